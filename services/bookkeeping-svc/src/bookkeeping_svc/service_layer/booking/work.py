"""What every booking step needs: its bookings (through the repository), a transition's outcome
stored with its event, and the rules for a failed request (back off, or the errors list)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bookkeeping_svc.adapters import repository
from bookkeeping_svc.adapters.twinfield.answers import Refusal
from bookkeeping_svc.adapters.twinfield.errors import RateLimited
from bookkeeping_svc.domain.booking import Booking, Outcome, Payment, Published
from bookkeeping_svc.domain.errors import HINTS
from bookkeeping_svc.service_layer.events import booking_event
from bookkeeping_svc.service_layer.gateway import Gateway
from bookkeeping_svc.settings import Settings
from koppel_shared.db import UnitOfWork
from koppel_shared.events.booking import BookingBooked, BookingFailed, BookingReversed
from koppel_shared.events.envelope import Envelope
from koppel_shared.logging import get_logger
from koppel_shared.service import Runtime

log = get_logger(__name__)

LOOKUP_COST, WRITE_COST = 1, 3  # Twinfield's credits for a query and for any other request

EVENTS = {Published.BOOKED: BookingBooked, Published.FAILED: BookingFailed, Published.REVERSED: BookingReversed}


async def record(uow: UnitOfWork, booking_id: uuid.UUID, outcome: Outcome, cause: Envelope | None = None) -> Any:
    """Store a transition's outcome and emit its event in the same transaction."""
    if not outcome.changed:
        return None
    row = await repository.of(uow).save(booking_id, outcome)
    if outcome.event is not None:
        await uow.emit(booking_event(EVENTS[outcome.event], row, cause))
    return row


def payment_of(row: Any) -> Payment:
    return Payment(
        reference=row.reference,
        invoice_number=row.invoice_number,
        customer_number=row.customer_number,
        customer_email=row.customer_email,
        amount_cents=row.amount_cents,
        method=row.method,
        paid_on=row.paid_on,
    )


def failure(code: str, message: str) -> Refusal:
    """A failure of our own (not an answer of Twinfield's) with the hint of its code."""
    return Refusal(code, message, HINTS[code].hint if code in HINTS else HINTS["validation"].hint)


@dataclass
class Work:
    runtime: Runtime
    gw: Gateway
    settings: Settings

    async def due(self, tenant_id: uuid.UUID, statuses: Sequence[str], *extra: Any, limit: int = 0) -> list[Any]:
        async with self.runtime.uow() as uow:
            return await repository.of(uow).due(tenant_id, statuses, *extra, limit=limit or self.settings.batch_size)

    async def claimed(self, tenant_id: uuid.UUID, rows: Iterable[Any], reversal: bool = False) -> set[str]:
        async with self.runtime.uow() as uow:
            return await repository.of(uow).memo_numbers(tenant_id, {r.invoice_number for r in rows}, reversal)

    async def refuse(self, uow: UnitOfWork, row: Any, refusal: Refusal) -> None:
        """Onto the errors list with what Twinfield (or our own check) said."""
        await record(uow, row.id, Booking.of(row).error(refusal.code, refusal.message, refusal.hint))

    async def timeout(self, rows: list[Any], exc: Exception) -> None:
        """Nothing was applied (or we will look before acting): back off, and after too many
        tries put the bookings on the errors list."""
        code = "rate_limited" if isinstance(exc, RateLimited) else "unavailable"
        message = f"{type(exc).__name__}: {exc}"
        backoff = timedelta(seconds=self.settings.transient_backoff_seconds)
        now = datetime.now(UTC)
        async with self.runtime.uow() as uow:
            for row in rows:
                booking = Booking.of(row)
                attempts = self.settings.transient_attempts
                outcome = booking.timeout(code, message, attempts, backoff, now, HINTS[code].hint)
                await record(uow, row.id, outcome)
            await uow.commit()
        log.warning("booker.transient", code=code, bookings=len(rows), error=str(exc)[:300])
