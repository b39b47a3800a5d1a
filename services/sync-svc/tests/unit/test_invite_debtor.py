"""The internal invite's debtor is the shared ``InviteDebtor``: what mandate-svc sends nested as
``customer`` (or an ERP sends flat) reaches the use case whole, and the Twikey form reads it."""

from __future__ import annotations

from koppel_shared.debtor import INVITE_DEBTOR_FIELDS, InviteDebtor
from sync_svc.domain.invite import invite_form
from sync_svc.entrypoints.internal import InviteIn, invite_request

DEBTOR = InviteDebtor(
    name="An Peeters",
    company_name="Peeters BV",
    email="an@example.be",
    mobile="+32470123456",
    customer_number="C-1001",
    address="Kerkstraat 1",
    zip="9000",
    city="Gent",
    country="BE",
    language="nl",
    iban="BE16645348971174",
    bic="JVBABE22",
)


def test_every_debtor_field_is_set_in_the_example() -> None:
    assert all(getattr(DEBTOR, name) for name in INVITE_DEBTOR_FIELDS)


def test_a_nested_customer_reaches_the_use_case_as_the_shared_debtor() -> None:
    body = InviteIn.model_validate(
        {"reference": "m1", "scheme": "CORE", "delivery": "email", "customer": DEBTOR.model_dump(), "vat_number": "BE1"}
    )
    request = invite_request(body)
    assert request.debtor == DEBTOR
    assert (request.reference, request.vat_number, request.first_name) == ("m1", "BE1", None)


def test_the_invite_form_carries_every_debtor_field_under_twikeys_names() -> None:
    body = InviteIn.model_validate({"reference": "m1", "scheme": "CORE", "delivery": "link", **DEBTOR.model_dump()})
    form = invite_form(invite_request(body), "1001")
    assert {k: form[k] for k in ("l", "email", "companyName", "mobile", "customerNumber", "iban", "bic")} == {
        "l": "nl",
        "email": "an@example.be",
        "companyName": "Peeters BV",
        "mobile": "+32470123456",
        "customerNumber": "C-1001",
        "iban": "BE16645348971174",
        "bic": "JVBABE22",
    }
    assert (form["address"], form["zip"], form["city"], form["country"]) == ("Kerkstraat 1", "9000", "Gent", "BE")
    assert (form["firstname"], form["lastname"]) == ("An", "Peeters")
