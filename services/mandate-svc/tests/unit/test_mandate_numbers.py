"""The mandate number we ask Twikey for: a valid SEPA mandate reference, derived from our id and
leading back to it."""

from __future__ import annotations

import re
import uuid

from mandate_svc.domain.numbers import mandate_id_of, twikey_number

SEPA_UMR = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9/?:().,'+ -]*[A-Za-z0-9])?$")


def test_the_number_is_a_sepa_mandate_reference_of_at_most_35_characters_starting_with_a_letter() -> None:
    for _ in range(100):
        number = twikey_number(str(uuid.uuid4()))
        assert len(number) <= 35
        assert SEPA_UMR.match(number)
        assert number[0].isalpha()


def test_the_same_mandate_always_gets_the_same_number_and_the_number_leads_back_to_it() -> None:
    mandate_id = str(uuid.uuid4())
    assert twikey_number(mandate_id) == twikey_number(mandate_id)
    assert mandate_id_of(twikey_number(mandate_id)) == mandate_id
    assert mandate_id_of(twikey_number(mandate_id).lower()) == mandate_id


def test_numbers_we_did_not_derive_lead_nowhere() -> None:
    assert mandate_id_of("SBX1M0000042") is None
    assert mandate_id_of("KOP123") is None
    assert mandate_id_of("KOP" + "G" * 32) is None
