"""mandate-svc keeps the debtor flat (the ERP's customer, the mandate record) but names its fields
as the shared ``koppel_shared.debtor`` model does: a debtor field added there is a failing test
here until the customer and the mandate carry it too."""

from __future__ import annotations

from dataclasses import fields

from koppel_shared.debtor import DEBTOR_FIELDS, INVITE_DEBTOR_FIELDS
from mandate_svc.domain.model import FeedMessage, Mandate
from mandate_svc.domain.preconditions import Customer


def test_the_customer_carries_every_invite_debtor_field() -> None:
    names = {f.name for f in fields(Customer)}
    assert {n for n in INVITE_DEBTOR_FIELDS if n != "customer_number"} <= names


def test_the_mandate_and_a_feed_message_carry_every_debtor_field() -> None:
    for record in (Mandate, FeedMessage):
        assert set(DEBTOR_FIELDS) <= {f.name for f in fields(record)}, record.__name__


def test_a_customer_becomes_the_shared_debtor_with_its_number() -> None:
    customer = Customer(number="C-7", company_name="Bakkerij Janssens BV", zip="9000", iban="BE16645348971174")
    debtor = customer.as_debtor()
    assert debtor.customer_number == "C-7"
    assert (debtor.company_name, debtor.zip, debtor.iban, debtor.name) == (
        "Bakkerij Janssens BV",
        "9000",
        "BE16645348971174",
        None,
    )
