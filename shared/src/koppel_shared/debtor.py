"""The debtor: who signs a mandate and is collected from, as the services pass it on — in events
(``twikey.mandate.changed``) and in mandate-svc's invite through sync-svc. One model, so that a
debtor field is added, renamed or read in one place.

Plain optional strings with no rules of their own: the rules belong to the edge that takes the data
in (mandate-svc's API, Twikey's feed), and an event reader is tolerant."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Debtor(BaseModel):
    model_config = ConfigDict(extra="ignore")  # as every event payload: a tolerant reader

    name: str | None = None
    company_name: str | None = None
    email: str | None = None
    mobile: str | None = None
    customer_number: str | None = None
    address: str | None = None
    zip: str | None = None
    city: str | None = None
    country: str | None = None
    language: str | None = None

    def fields(self) -> dict[str, Any]:
        """Every field by name (for records that keep the debtor's fields flat)."""
        return self.model_dump()


class InviteDebtor(Debtor):
    """The debtor of sync-svc's internal invite (``customer``): with the bank account to prefill."""

    iban: str | None = None
    bic: str | None = None


DEBTOR_FIELDS = tuple(Debtor.model_fields)
INVITE_DEBTOR_FIELDS = tuple(InviteDebtor.model_fields)
