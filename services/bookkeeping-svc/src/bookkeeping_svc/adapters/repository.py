"""Bookings in PostgreSQL: the rows the booking steps work on, and the one way a transition's
outcome (domain/booking.py) is stored: its changes, the version bumped, ``updated_at`` set.

Use cases see ``BookingRepository`` (the interface), taken from their unit of work with ``of(uow)``;
the unit tests hand them an in-memory one (tests/unit/fakes.py). The bulk transitions
(service_layer/booking/bulk.py: ``states`` and ``save_all``) work on a session, not a unit of work
(the consent check pauses inside the gateway's own transaction), so they use
``SqlBookingRepository`` itself."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from bookkeeping_svc.adapters.orm import bookings
from bookkeeping_svc.domain.booking import Booking, Outcome
from koppel_shared.db import UnitOfWork

WAKE_CHANNEL = "koppel_bookings_due"
# Delivered when the transaction commits, so the booker finds the rows it is woken for.
_WAKE_BOOKER = sa.text(f"SELECT pg_notify('{WAKE_CHANNEL}', '')")
# The columns ``Booking.of`` reads: a bulk transition loads these, not whole rows.
_STATE_COLUMNS = (
    bookings.c.id,
    bookings.c.status,
    bookings.c.memo_number,
    bookings.c.memo_line,
    bookings.c.reverse_requested,
    bookings.c.paused_from,
    bookings.c.customer_code,
    bookings.c.error_code,
    bookings.c.transient_failures,
    bookings.c.attempts,
    bookings.c.matched_at,
    bookings.c.reversed_on,
)
# Ids per UPDATE when storing many outcomes (asyncpg takes at most 32767 parameters).
_IDS_PER_STATEMENT = 1000


class BookingRepository(Protocol):
    """Bookings as the booking steps and the operators' use cases use them. A row is any object
    with the ``bookings`` columns as attributes."""

    async def get(self, tenant_id: uuid.UUID, booking_id: uuid.UUID, *, lock: bool = False) -> Any: ...
    async def due(self, tenant_id: uuid.UUID, statuses: Sequence[str], *extra: Any, limit: int) -> list[Any]: ...
    async def memo_numbers(self, tenant_id: uuid.UUID, invoice_numbers: Iterable[str], reversal: bool) -> set[str]: ...
    async def save(self, booking_id: uuid.UUID, outcome: Outcome) -> Any: ...
    async def wake(self) -> None: ...


def of(uow: UnitOfWork) -> BookingRepository:
    """The unit of work's booking repository."""
    return uow.repository(SqlBookingRepository)


class SqlBookingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: uuid.UUID, booking_id: uuid.UUID, *, lock: bool = False) -> Any:
        stmt = sa.select(bookings).where(bookings.c.id == booking_id, bookings.c.tenant_id == tenant_id)
        if lock:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).first()

    async def due(self, tenant_id: uuid.UUID, statuses: Sequence[str], *extra: Any, limit: int) -> list[Any]:
        """A tenant's bookings in ``statuses`` whose time has come, oldest first."""
        stmt = (
            sa.select(bookings)
            .where(
                bookings.c.tenant_id == tenant_id,
                bookings.c.status.in_(statuses),
                bookings.c.next_attempt_at <= sa.func.now(),
                *extra,
            )
            .order_by(bookings.c.next_attempt_at, bookings.c.created_at)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).all())

    async def memo_numbers(self, tenant_id: uuid.UUID, invoice_numbers: Iterable[str], reversal: bool) -> set[str]:
        """The MEMO numbers (counter MEMOs: ``reversal``) that bookings of these invoices keep
        already: never anyone else's MEMO."""
        column = bookings.c.reversal_memo_number if reversal else bookings.c.memo_number
        found = await self.session.execute(
            sa.select(column).where(
                bookings.c.tenant_id == tenant_id,
                bookings.c.invoice_number.in_(set(invoice_numbers)),
                column.is_not(None),
            )
        )
        return {str(number) for (number,) in found}

    async def save(self, booking_id: uuid.UUID, outcome: Outcome) -> Any:
        """Store a transition's changes; returns the row as it is now."""
        return (
            await self.session.execute(
                sa.update(bookings)
                .where(bookings.c.id == booking_id)
                .values(version=bookings.c.version + 1, updated_at=sa.func.now(), **outcome.changes)
                .returning(bookings)
            )
        ).one()

    async def states(
        self, tenant_id: uuid.UUID | None, statuses: Sequence[str], *extra: Any
    ) -> list[tuple[uuid.UUID, Booking]]:
        """The state of each booking in ``statuses`` (one tenant's, or everyone's), row-locked
        until the transaction ends, in id order so that two bulk changes never deadlock."""
        stmt = sa.select(*_STATE_COLUMNS).where(bookings.c.status.in_(statuses), *extra)
        if tenant_id is not None:
            stmt = stmt.where(bookings.c.tenant_id == tenant_id)
        rows = (await self.session.execute(stmt.order_by(bookings.c.id).with_for_update())).all()
        return [(row.id, Booking.of(row)) for row in rows]

    async def save_all(self, outcomes: Sequence[tuple[uuid.UUID, Outcome]]) -> int:
        """Store many transitions' changes like ``save`` does, one statement for each set of
        bookings whose changes are the same (a tenant's paused bookings differ only in what they
        were doing). Returns how many bookings were stored."""
        alike: dict[tuple[tuple[str, Any], ...], list[uuid.UUID]] = {}
        for booking_id, outcome in outcomes:
            if outcome.changed:
                alike.setdefault(tuple(sorted(outcome.changes.items())), []).append(booking_id)
        for changes, ids in alike.items():
            for start in range(0, len(ids), _IDS_PER_STATEMENT):
                await self.session.execute(
                    sa.update(bookings)
                    .where(bookings.c.id.in_(ids[start : start + _IDS_PER_STATEMENT]))
                    .values(version=bookings.c.version + 1, updated_at=sa.func.now(), **dict(changes))
                )
        return sum(len(ids) for ids in alike.values())

    async def wake(self) -> None:
        """Wake the booker when this transaction commits (LISTENed to on ``WAKE_CHANNEL``)."""
        await self.session.execute(_WAKE_BOOKER)
