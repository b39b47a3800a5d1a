"""What arrives from the broker, turned into work for the booker, and what operators do with it.

Handlers only write rows (the booker loop does the Twinfield calls), so they are fast and run in
the consumer's transaction with its inbox record. "Never twice" starts here: a booking is keyed
on (tenant, collection) and on the paid item at Twikey (tenant, kind, Twikey id). A second
``collection.paid`` for either is a duplicate (nothing changes) when kind, id, amount and invoice
agree, and a conflict on the operator's errors list otherwise (service_layer/conflicts.py).
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from bookkeeping_svc.adapters import repository
from bookkeeping_svc.adapters.orm import bookings, customer_updates
from bookkeeping_svc.domain.booking import (
    TABS,
    Booking,
    IllegalTransition,
    Status,
    reversed_unpaid,
)
from bookkeeping_svc.domain.identity import Verdict, compare
from bookkeeping_svc.service_layer import conflicts
from bookkeeping_svc.service_layer.booking import bulk
from bookkeeping_svc.service_layer.booking.work import record
from bookkeeping_svc.service_layer.events import booking_event
from bookkeeping_svc.service_layer.payments import booking_values, new_booking_status, paid_item, wake_booker
from koppel_shared.db import UnitOfWork
from koppel_shared.errors import Conflict, Malformed, NotFound
from koppel_shared.events.booking import BookingReversed
from koppel_shared.events.collection import CollectionPaid, CollectionReversed
from koppel_shared.events.envelope import Envelope
from koppel_shared.events.mandate import MandateSigned
from koppel_shared.logging import get_logger

log = get_logger(__name__)


def _tenant(envelope: Envelope) -> uuid.UUID:
    if envelope.tenant_id is None:
        raise ValueError(f"{envelope.type} {envelope.id} has no tenant_id")
    return envelope.tenant_id


def _row_values(tenant_id: uuid.UUID, data: CollectionPaid | CollectionReversed, envelope: Envelope) -> dict[str, Any]:
    return booking_values(tenant_id, data, envelope.occurred_at, envelope.correlation_id)


async def on_collection_paid(envelope: Envelope, data: CollectionPaid, uow: UnitOfWork) -> None:
    tenant_id = _tenant(envelope)
    values = _row_values(tenant_id, data, envelope)
    values.update(await new_booking_status(uow, tenant_id))
    # No conflict target: either unique key (collection; kind + Twikey id) makes it a repeat.
    inserted = (
        await uow.session.execute(insert(bookings).values(**values).on_conflict_do_nothing().returning(bookings.c.id))
    ).first()
    if inserted is not None:
        if values["status"] == Status.OPEN:
            await wake_booker(uow)
        return
    await _repeat(uow, envelope, data, values)


def _collides(values: dict[str, Any]) -> Any:
    """Bookings of the same collection or of the same paid item (kind + Twikey id)."""
    same_collection = bookings.c.collection_id == values["collection_id"]
    if values["twikey_id"] is None:
        return same_collection
    same_item = sa.and_(bookings.c.payment_kind == values["payment_kind"], bookings.c.twikey_id == values["twikey_id"])
    return sa.or_(same_collection, same_item)


async def _repeat(uow: UnitOfWork, envelope: Envelope, data: CollectionPaid, values: dict[str, Any]) -> None:
    """A paid item we have a booking for: a duplicate if any booking it collides with has the
    same facts, otherwise a conflict with the first."""
    rows = (
        await uow.session.execute(
            sa.select(bookings)
            .where(bookings.c.tenant_id == values["tenant_id"], _collides(values))
            .order_by(bookings.c.created_at, bookings.c.id)
        )
    ).all()
    incoming = paid_item(SimpleNamespace(**values))
    comparisons = [(row, compare(paid_item(row), incoming)) for row in rows]
    if not comparisons or any(c.verdict == Verdict.DUPLICATE for _, c in comparisons):
        log.info(
            "booking.duplicate_paid",
            collection_id=data.collection_id,
            payment_kind=values["payment_kind"],
            twikey_id=values["twikey_id"],
        )
        return
    existing, comparison = comparisons[0]
    await conflicts.record(uow, envelope, existing, data, values, comparison)


async def on_collection_reversed(envelope: Envelope, data: CollectionReversed, uow: UnitOfWork) -> None:
    tenant_id = _tenant(envelope)
    # The booking of this collection, else of the same paid item announced by another collection
    # (a duplicate that was never booked on its own).
    row = (
        await uow.session.execute(
            sa.select(bookings)
            .where(bookings.c.tenant_id == tenant_id, _collides(_row_values(tenant_id, data, envelope)))
            .order_by((bookings.c.collection_id == data.collection_id).desc(), bookings.c.created_at)
            .limit(1)
            .with_for_update()
        )
    ).first()
    now = datetime.now(UTC)
    if row is None:
        # Reversed before we heard it was paid: nothing to book, and a late collection.paid for it
        # is a duplicate of this row.
        values = _row_values(tenant_id, data, envelope)
        values.update(reversed_unpaid(now.date()))
        inserted = (
            await uow.session.execute(insert(bookings).values(**values).on_conflict_do_nothing().returning(bookings))
        ).first()
        if inserted is not None:
            await uow.emit(booking_event(BookingReversed, inserted, envelope))
        return
    outcome = Booking.of(row).reverse(now.date(), now)
    await record(uow, row.id, outcome, envelope)
    if outcome.changed and outcome.event is None:
        # Posted (or maybe posted): the booker books the counter memo once the memo is certain.
        await wake_booker(uow)


async def on_mandate_signed(envelope: Envelope, data: MandateSigned, uow: UnitOfWork) -> None:
    tenant_id = _tenant(envelope)
    if not data.iban:
        log.info("customer_update.skipped_no_iban", mandate_id=data.mandate_id)
        return
    await uow.session.execute(
        insert(customer_updates)
        .values(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            mandate_id=data.mandate_id,
            mandate_version=data.version,
            customer_code=data.customer_number,
            iban=data.iban.replace(" ", "").upper(),
            bic=data.bic,
            ascription=data.company_name or data.name,
            mandate_number=data.mandate_number,
            signature_date=data.signature_date,
            scheme=data.scheme.lower() if data.scheme else None,
            status="open",
        )
        .on_conflict_do_nothing()
    )
    await wake_booker(uow)


# -- operators ---------------------------------------------------------------------------------


async def retry(uow: UnitOfWork, tenant_id: uuid.UUID, booking_id: uuid.UUID) -> Any:
    row = await repository.of(uow).get(tenant_id, booking_id, lock=True)
    if row is None:
        raise NotFound("booking_not_found", f"no booking {booking_id}")
    try:
        outcome = Booking.of(row).retry(datetime.now(UTC))
    except IllegalTransition:
        raise Conflict(
            "booking_not_retryable", f"booking is {row.status}; only open or failed bookings can be retried"
        ) from None
    await wake_booker(uow)
    return await record(uow, row.id, outcome)


async def retry_all(uow: UnitOfWork, tenant_id: uuid.UUID | None = None, error_code: str | None = None) -> int:
    count = await bulk.requeue_all(uow.session, datetime.now(UTC), tenant_id, error_code)
    await uow.session.execute(
        sa.update(customer_updates)
        .where(customer_updates.c.status.in_(["open", "error"]))
        .where(customer_updates.c.tenant_id == tenant_id if tenant_id is not None else sa.true())
        .values(status="open", next_attempt_at=sa.func.now(), updated_at=sa.func.now())
    )
    await wake_booker(uow)
    return count


async def list_bookings(
    uow: UnitOfWork,
    tenant_id: uuid.UUID,
    tab: str | None,
    limit: int,
    before: datetime | None,
    search: str | None = None,
    cursor: str | None = None,
) -> list[Any]:
    """Newest first. ``cursor`` (what :func:`booking_cursor` made of the last row) continues after
    that row, also past rows created in the same transaction, which a bare ``before`` time skips."""
    stmt = sa.select(bookings).where(bookings.c.tenant_id == tenant_id)
    if tab is not None:
        stmt = stmt.where(bookings.c.status.in_(TABS[tab]))
    if search:
        stmt = stmt.where(
            sa.or_(
                bookings.c.invoice_number == search,
                bookings.c.customer_number == search,
                bookings.c.twikey_id == search,
                bookings.c.twikey_transaction_id == search,
                bookings.c.memo_number == search,
                bookings.c.customer_name.icontains(search, autoescape=True),
            )
        )
    if before is not None:
        stmt = stmt.where(bookings.c.created_at < before)
    if cursor is not None:
        created, last_id = _decode_cursor(cursor)
        stmt = stmt.where(sa.tuple_(bookings.c.created_at, bookings.c.id) < sa.tuple_(sa.literal(created), last_id))
    stmt = stmt.order_by(bookings.c.created_at.desc(), bookings.c.id.desc()).limit(limit)
    return list((await uow.session.execute(stmt)).all())


def booking_cursor(row: Any) -> str:
    return base64.urlsafe_b64encode(f"booking|{row.created_at.isoformat()}|{row.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        kind, created, last_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        if kind != "booking":
            raise ValueError(kind)
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError(created)
        return at, uuid.UUID(last_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed("invalid_cursor", "cursor: not a cursor this list returned") from exc


async def get_booking(uow: UnitOfWork, tenant_id: uuid.UUID, booking_id: uuid.UUID) -> Any:
    row = (
        await uow.session.execute(
            sa.select(bookings).where(bookings.c.id == booking_id, bookings.c.tenant_id == tenant_id)
        )
    ).first()
    if row is None:
        raise NotFound("booking_not_found", f"no booking {booking_id}")
    return row
