"""bookkeeping-svc's public events: a payment's life in Twinfield."""

from __future__ import annotations

from datetime import datetime

from koppel_shared.events.registry import EventData, event_type


class Booking(EventData):
    booking_id: str
    collection_id: str
    twikey_transaction_id: str | None = None
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
