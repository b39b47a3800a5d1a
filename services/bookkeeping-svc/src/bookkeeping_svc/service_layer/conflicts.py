"""Payment conflicts: a paid item announced again with other facts (domain/identity.py). The
second announcement is not booked; it is kept with the booking it collides with, published as
``booking.conflict`` and shown on the operator's errors list until an operator dismisses it (with
a note) or books it as the genuinely different payment it is."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from bookkeeping_svc.adapters.orm import booking_conflicts, bookings
from bookkeeping_svc.domain.identity import CONFLICT_CODE, CONFLICT_HINT, Comparison, conflict_reference
from bookkeeping_svc.service_layer.events import conflict_event
from bookkeeping_svc.service_layer.payments import booking_values, new_booking_status, wake_booker
from koppel_shared.db import UnitOfWork
from koppel_shared.errors import Conflict, NotFound
from koppel_shared.events.collection import CollectionPaid
from koppel_shared.events.envelope import Envelope
from koppel_shared.logging import get_logger

log = get_logger(__name__)

OPEN, DISMISSED, BOOKED = "open", "dismissed", "booked"


def _fingerprint(existing_id: uuid.UUID, values: dict[str, Any]) -> str:
    """The same conflicting announcement (a redelivery, a feed reset) is one conflict."""
    facts = [str(existing_id)] + [
        str(values[k])
        for k in ("collection_id", "payment_kind", "twikey_id", "amount_cents", "invoice_id", "invoice_number")
    ]
    return hashlib.sha256("\x1f".join(facts).encode()).hexdigest()


async def record(
    uow: UnitOfWork,
    envelope: Envelope,
    existing: Any,
    data: CollectionPaid,
    values: dict[str, Any],
    comparison: Comparison,
) -> None:
    row = (
        await uow.session.execute(
            insert(booking_conflicts)
            .values(
                id=uuid.uuid4(),
                tenant_id=existing.tenant_id,
                booking_id=existing.id,
                code=CONFLICT_CODE,
                differences=list(comparison.differences),
                fingerprint=_fingerprint(existing.id, values),
                collection_id=values["collection_id"],
                payment_kind=values["payment_kind"],
                twikey_id=values["twikey_id"],
                amount_cents=values["amount_cents"],
                invoice_number=values["invoice_number"],
                incoming=data.model_dump(mode="json"),
                status=OPEN,
                correlation_id=envelope.correlation_id,
            )
            .on_conflict_do_nothing()
            .returning(booking_conflicts)
        )
    ).first()
    facts = {
        "booking_id": str(existing.id),
        "collection_id": data.collection_id,
        "payment_kind": values["payment_kind"],
        "twikey_id": values["twikey_id"],
        "differences": list(comparison.differences),
    }
    if row is None:
        log.info("booking.conflict_seen_again", **facts)
        return
    log.warning("booking.payment_conflict", conflict_id=str(row.id), **facts)
    await uow.emit(conflict_event(row, existing, CONFLICT_HINT, envelope))


# -- operators ---------------------------------------------------------------------------------


async def list_conflicts(
    uow: UnitOfWork, tenant_id: uuid.UUID, status: str | None = OPEN, limit: int = 100, before: datetime | None = None
) -> list[tuple[Any, Any]]:
    """Conflicts, newest first, each with the booking it collides with."""
    stmt = (
        sa.select(booking_conflicts)
        .where(booking_conflicts.c.tenant_id == tenant_id)
        .order_by(booking_conflicts.c.created_at.desc(), booking_conflicts.c.id)
        .limit(limit)
    )
    if status is not None:
        stmt = stmt.where(booking_conflicts.c.status == status)
    if before is not None:
        stmt = stmt.where(booking_conflicts.c.created_at < before)
    rows = (await uow.session.execute(stmt)).all()
    ids = {r.booking_id for r in rows}
    found = {}
    if ids:
        found = {b.id: b for b in (await uow.session.execute(sa.select(bookings).where(bookings.c.id.in_(ids)))).all()}
    return [(r, found[r.booking_id]) for r in rows]


async def get_conflict(uow: UnitOfWork, tenant_id: uuid.UUID, conflict_id: uuid.UUID) -> tuple[Any, Any]:
    conflict = await _locked(uow, tenant_id, conflict_id, lock=False)
    return conflict, await _booking(uow, conflict.booking_id)


async def _locked(uow: UnitOfWork, tenant_id: uuid.UUID, conflict_id: uuid.UUID, lock: bool = True) -> Any:
    stmt = sa.select(booking_conflicts).where(
        booking_conflicts.c.id == conflict_id, booking_conflicts.c.tenant_id == tenant_id
    )
    row = (await uow.session.execute(stmt.with_for_update() if lock else stmt)).first()
    if row is None:
        raise NotFound("conflict_not_found", f"no booking conflict {conflict_id}")
    if lock and row.status != OPEN:
        raise Conflict("conflict_resolved", f"the conflict is already {row.status}")
    return row


async def _booking(uow: UnitOfWork, booking_id: uuid.UUID) -> Any:
    return (await uow.session.execute(sa.select(bookings).where(bookings.c.id == booking_id))).one()


async def _resolve(uow: UnitOfWork, conflict: Any, **values: Any) -> tuple[Any, Any]:
    row = (
        await uow.session.execute(
            sa.update(booking_conflicts)
            .where(booking_conflicts.c.id == conflict.id)
            .values(
                resolved_at=sa.func.now(), updated_at=sa.func.now(), version=booking_conflicts.c.version + 1, **values
            )
            .returning(booking_conflicts)
        )
    ).one()
    existing = await _booking(uow, row.booking_id)
    await uow.emit(conflict_event(row, existing, CONFLICT_HINT))
    return row, existing


async def dismiss(uow: UnitOfWork, tenant_id: uuid.UUID, conflict_id: uuid.UUID, note: str) -> tuple[Any, Any]:
    """Not a payment to book (a correction, a mistake upstream): off the list, with the reason."""
    conflict = await _locked(uow, tenant_id, conflict_id)
    return await _resolve(uow, conflict, status=DISMISSED, note=note)


async def book(uow: UnitOfWork, tenant_id: uuid.UUID, conflict_id: uuid.UUID, note: str | None) -> tuple[Any, Any]:
    """A genuinely different payment: booked as its own booking. It cannot take the Twikey
    identity of the booking it collides with (that one is that paid item), so it is booked without
    a Twikey id, under a reference of its own that Twinfield keeps apart from the other MEMO."""
    conflict = await _locked(uow, tenant_id, conflict_id)
    incoming = CollectionPaid.model_validate(conflict.incoming)
    values = booking_values(tenant_id, incoming, conflict.created_at, conflict.correlation_id)
    values.update(
        twikey_id=None,
        twikey_transaction_id=None,
        reference=conflict_reference(conflict.id.hex, values["reference"]),
        **await new_booking_status(uow, tenant_id),
    )
    inserted = (
        await uow.session.execute(insert(bookings).values(**values).on_conflict_do_nothing().returning(bookings.c.id))
    ).first()
    if inserted is None:
        raise Conflict(
            "conflict_same_collection",
            f"collection {incoming.collection_id} is booked already; a collection is booked once. "
            "Correct the booking in Twinfield by hand and dismiss the conflict with a note.",
        )
    await wake_booker(uow)
    return await _resolve(uow, conflict, status=BOOKED, note=note, resolved_booking_id=inserted.id)
