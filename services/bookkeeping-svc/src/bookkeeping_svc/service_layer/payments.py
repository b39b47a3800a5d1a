"""A paid (or reversed) collection as a ``bookings`` row: its identity at Twikey, our reference
in Twinfield, and the nudge that wakes the booker when a row becomes due."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bookkeeping_svc.adapters import repository
from bookkeeping_svc.adapters.orm import connections
from bookkeeping_svc.adapters.repository import WAKE_CHANNEL as WAKE_CHANNEL  # the booker LISTENs on it
from bookkeeping_svc.domain.booking import opened
from bookkeeping_svc.domain.identity import TRANSACTION, PaidItem, payment_kind, payment_reference
from koppel_shared.db import UnitOfWork
from koppel_shared.events.collection import Collection


async def wake_booker(uow: UnitOfWork) -> None:
    await repository.of(uow).wake()


def identity(data: Collection) -> tuple[str, str | None]:
    """(kind, Twikey id) of an announced collection; announcements from before kinds existed
    carry the kind in ``method`` and the id (of either kind) in ``twikey_transaction_id``."""
    return payment_kind(data.method, data.payment_kind), data.twikey_id or data.twikey_transaction_id


async def connection_status(uow: UnitOfWork, tenant_id: uuid.UUID) -> str | None:
    return (
        await uow.session.execute(sa.select(connections.c.status).where(connections.c.tenant_id == tenant_id))
    ).scalar_one_or_none()


async def new_booking_status(uow: UnitOfWork, tenant_id: uuid.UUID) -> dict[str, Any]:
    """A new booking is open, or paused (to resume as open) while the tenant's consent is lost."""
    return opened(await connection_status(uow, tenant_id) == "consent_lost")


def booking_values(
    tenant_id: uuid.UUID, data: Collection, occurred_at: datetime, correlation_id: str | None
) -> dict[str, Any]:
    kind, twikey_id = identity(data)
    paid_at = data.paid_at or occurred_at
    return {
        "id": uuid.uuid4(),
        "tenant_id": tenant_id,
        "collection_id": data.collection_id,
        "payment_kind": kind,
        "twikey_id": twikey_id,
        "twikey_transaction_id": twikey_id if kind == TRANSACTION else None,
        "reference": payment_reference(kind, twikey_id, data.collection_id),
        "invoice_id": data.invoice_id,
        "invoice_number": data.invoice_number,
        "customer_number": data.customer_number,
        "customer_email": data.customer_email,
        "customer_name": data.customer_name,
        "amount_cents": data.amount_cents,
        "method": data.method,
        "paid_on": paid_at.astimezone(UTC).date(),
        "correlation_id": correlation_id,
    }


def paid_item(row: Any) -> PaidItem:
    """The identity facts of a booking row (or of its values as a mapping's attributes)."""
    return PaidItem(
        collection_id=row.collection_id,
        kind=row.payment_kind,
        twikey_id=row.twikey_id,
        amount_cents=row.amount_cents,
        invoice_number=row.invoice_number,
        invoice_id=row.invoice_id,
    )
