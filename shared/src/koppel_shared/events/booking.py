"""bookkeeping-svc's public events: a payment's life in Twinfield."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from koppel_shared.events.collection import PaymentKind
from koppel_shared.events.registry import EventData, event_type


class Booking(EventData):
    booking_id: str
    collection_id: str
    payment_kind: PaymentKind | None = None  # with twikey_id: the paid item at Twikey
    twikey_id: str | None = None
    twikey_transaction_id: str | None = None  # direct debits only (pay links: twikey_id)
    invoice_number: str
    customer_number: str
    amount_cents: int
    status: str  # open|booked|matched|error|paused|reversed
    office: str | None = None
    memo_number: str | None = None  # Twinfield MEMO transaction number
    sales_number: str | None = None  # the matched VRK transaction number
    error: str | None = None
    hint: str | None = None
    version: int
    updated_at: datetime


@event_type("booking.booked", version=1)
class BookingBooked(Booking):
    pass


@event_type("booking.failed", version=1)
class BookingFailed(Booking):
    pass


@event_type("booking.reversed", version=1)
class BookingReversed(Booking):
    pass


@event_type("booking.conflict", version=1)
class BookingConflict(EventData):
    """A paid item announced again with other facts (amount, invoice, or another payment for the
    same collection): not booked, on the operator's errors list until resolved."""

    conflict_id: str
    code: str  # payment_conflict
    differences: list[str]  # payment | amount | invoice
    payment_kind: PaymentKind | None = None
    twikey_id: str | None = None
    existing: Booking  # the booking already made
    incoming: dict[str, Any]  # the collection as announced the second time
    status: str  # open|dismissed|booked
    hint: str | None = None
    updated_at: datetime
