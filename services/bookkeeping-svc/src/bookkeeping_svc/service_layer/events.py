"""The ``booking.*`` events, made from a booking row (``booking.conflict`` from a conflict row
and the booking it conflicts with); ids are derived from the booking and its
version so that re-running a step cannot publish a second, different event for the same change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from koppel_shared.events import new_event
from koppel_shared.events.booking import Booking, BookingConflict
from koppel_shared.events.envelope import Envelope

NAMESPACE = uuid.UUID("2f6b7a52-7d0e-4d55-9a43-0c1f4d1b6a10")


def booking_data(model: type[Booking], row: Any) -> Booking:
    return model(
        booking_id=str(row.id),
        collection_id=row.collection_id,
        payment_kind=row.payment_kind,
        twikey_id=row.twikey_id,
        twikey_transaction_id=row.twikey_transaction_id,
        invoice_number=row.invoice_number,
        customer_number=row.customer_number,
        amount_cents=row.amount_cents,
        status=row.status,
        office=row.office,
        memo_number=row.memo_number,
        sales_number=row.sales_number,
        error=row.error_message,
        hint=row.hint,
        version=row.version,
        updated_at=row.updated_at or datetime.now(UTC),
    )


def _event(data: Any, row: Any, name: str, cause: Envelope | None) -> Envelope:
    event_id = uuid.uuid5(NAMESPACE, f"{row.id}:{name}:{row.version}")
    if cause is not None:
        return cause.caused(data, id=event_id)
    return new_event(data, tenant_id=row.tenant_id, correlation_id=row.correlation_id, id=event_id)


def booking_event(model: type[Booking], row: Any, cause: Envelope | None = None) -> Envelope:
    return _event(booking_data(model, row), row, model.__name__, cause)


def conflict_event(conflict: Any, existing: Any, hint: str, cause: Envelope | None = None) -> Envelope:
    data = BookingConflict(
        conflict_id=str(conflict.id),
        code=conflict.code,
        differences=list(conflict.differences),
        payment_kind=conflict.payment_kind,
        twikey_id=conflict.twikey_id,
        existing=booking_data(Booking, existing),
        incoming=dict(conflict.incoming),
        status=conflict.status,
        hint=hint,
        updated_at=conflict.updated_at or datetime.now(UTC),
    )
    return _event(data, conflict, BookingConflict.__name__, cause)
