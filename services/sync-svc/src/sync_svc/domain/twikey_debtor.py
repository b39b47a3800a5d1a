"""The debtor's fields under the names Twikey's forms give them, one mapping for the invite
(``/creditor/invite``) and the pay link (``/creditor/payment/link``); the names follow Twikey's
API description (reference §2.1, and ``POST /payment/link`` in its openapi.yaml)."""

from __future__ import annotations

from typing import Protocol


class DebtorFields(Protocol):
    """A debtor as either request carries it (``koppel_shared.debtor.Debtor`` or an invite)."""

    @property
    def language(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...
    @property
    def company_name(self) -> str | None: ...
    @property
    def mobile(self) -> str | None: ...
    @property
    def customer_number(self) -> str | None: ...
    @property
    def address(self) -> str | None: ...
    @property
    def zip(self) -> str | None: ...
    @property
    def city(self) -> str | None: ...
    @property
    def country(self) -> str | None: ...


def twikey_debtor_params(debtor: DebtorFields) -> dict[str, str | None]:
    """Twikey's parameter → the debtor's value (the name is split by each form its own way)."""
    return {
        "l": debtor.language,
        "email": debtor.email,
        "companyName": debtor.company_name,
        "mobile": debtor.mobile,
        "customerNumber": debtor.customer_number,
        "address": debtor.address,
        "zip": debtor.zip,
        "city": debtor.city,
        "country": debtor.country,
    }
