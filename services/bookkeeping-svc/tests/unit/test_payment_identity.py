"""The pure rules of payment identity: kinds, references, duplicate versus conflict."""

from dataclasses import replace

import pytest

from bookkeeping_svc.domain.booking import payment_description
from bookkeeping_svc.domain.identity import (
    PaidItem,
    Verdict,
    compare,
    conflict_reference,
    payment_kind,
    payment_reference,
)

ITEM = PaidItem(
    collection_id="c-1",
    kind="transaction",
    twikey_id="4711",
    amount_cents=500000,
    invoice_number="F2025-0042",
    invoice_id="i-1",
)


def test_same_kind_id_amount_and_invoice_is_a_duplicate() -> None:
    assert compare(ITEM, replace(ITEM)).verdict == Verdict.DUPLICATE


def test_another_collection_for_the_same_payment_with_the_same_facts_is_a_duplicate() -> None:
    assert compare(ITEM, replace(ITEM, collection_id="c-2")).verdict == Verdict.DUPLICATE


@pytest.mark.parametrize(
    ("change", "differences"),
    [
        ({"amount_cents": 499999}, ("amount",)),
        ({"invoice_number": "F2025-0043"}, ("invoice",)),
        ({"invoice_id": "i-2"}, ("invoice",)),
        ({"kind": "paylink"}, ("payment",)),
        ({"twikey_id": "4712"}, ("payment",)),
        ({"twikey_id": "4712", "amount_cents": 1, "invoice_number": "X"}, ("payment", "amount", "invoice")),
    ],
)
def test_any_other_fact_makes_a_conflict_naming_what_differs(
    change: dict[str, object], differences: tuple[str, ...]
) -> None:
    result = compare(ITEM, replace(ITEM, **change))  # type: ignore[arg-type]
    assert result.verdict == Verdict.CONFLICT
    assert result.differences == differences


def test_a_fact_not_yet_known_on_one_side_is_not_a_difference() -> None:
    assert compare(replace(ITEM, twikey_id=None, invoice_id=None), ITEM).verdict == Verdict.DUPLICATE


def test_kind_comes_from_the_event_else_from_the_method() -> None:
    assert payment_kind("paylink", None) == "paylink"
    assert payment_kind("direct_debit", None) == "transaction"
    assert payment_kind("direct_debit", "paylink") == "paylink"
    assert payment_kind("paylink", "bogus") == "paylink"


def test_references_name_the_kind_so_the_same_number_is_two_memos() -> None:
    tx = payment_reference("transaction", "4711", "c-1")
    link = payment_reference("paylink", "4711", "c-2")
    assert (tx, link) == ("TX4711", "PL4711")
    assert payment_description(tx) != payment_description(link)
    assert payment_reference("transaction", None, "c-1") == "c-1"


def test_a_conflict_booked_by_hand_has_a_reference_unique_within_the_description() -> None:
    long = payment_reference("transaction", "7" * 60, "c-1")
    first = payment_description(conflict_reference("a" * 32, long))
    second = payment_description(conflict_reference("b" * 32, long))
    assert first != second and len(first) <= 40
