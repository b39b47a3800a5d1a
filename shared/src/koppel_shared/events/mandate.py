"""mandate-svc's public events. Every one carries the whole current mandate (``Mandate``) and a
``version`` that grows with every change, so consumers keep a projection and an ERP can ignore a
stale notification."""

from __future__ import annotations

from datetime import date, datetime

from koppel_shared.events.registry import EventData, event_type


class Mandate(EventData):
    mandate_id: str
    mandate_number: str | None = None
    customer_number: str
    status: str  # requested|prepared|pending_bank|active|suspended|cancelled|rejected|expired
    scheme: str  # CORE|B2B
    delivery: str | None = None
    sign_url: str | None = None
    name: str | None = None
    company_name: str | None = None
    email: str | None = None
    iban: str | None = None
    bic: str | None = None
    max_amount_cents: int | None = None
    signature_date: date | None = None
    sign_method: str | None = None
    sign_place: str | None = None
    signer: str | None = None
    mobile: str | None = None
    contract_number: str | None = None
    reason: str | None = None
    version: int
    updated_at: datetime


@event_type("mandate.prepared", version=1)
class MandatePrepared(Mandate):
    pass


@event_type("mandate.signed", version=1)
class MandateSigned(Mandate):
    pass


@event_type("mandate.updated", version=1)
class MandateUpdated(Mandate):
    pass


@event_type("mandate.suspended", version=1)
class MandateSuspended(Mandate):
    pass


@event_type("mandate.resumed", version=1)
class MandateResumed(Mandate):
    pass


@event_type("mandate.cancelled", version=1)
class MandateCancelled(Mandate):
    pass


@event_type("mandate.rejected", version=1)
class MandateRejected(Mandate):
    pass


@event_type("mandate.expired", version=1)
class MandateExpired(Mandate):
    pass
