"""Transitions for many bookings at once: pause a tenant's bookings when its Twinfield consent is
gone, resume them when it reconnects, requeue what is open or failed (the operators' "retry all"
and the nightly sweep). Each booking goes through its aggregate's own transition
(``Booking.pause`` / ``resume`` / ``retry``) via ``domain.booking.each``, so a bulk change does
exactly what the same change to one booking does; the repository stores the outcomes.

None of these transitions publishes an event, so they take the session, not a unit of work: the
consent check that pauses runs inside the gateway's own transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bookkeeping_svc.adapters.orm import bookings
from bookkeeping_svc.adapters.repository import SqlBookingRepository
from bookkeeping_svc.domain.booking import PAUSABLE, RESUMABLE, RETRYABLE, Outcome, each
from bookkeeping_svc.domain.errors import hint_for


async def _apply(session: AsyncSession, outcomes: list[tuple[uuid.UUID, Outcome]]) -> int:
    # A transition that publishes would need the outbox: these never do (domain tests hold it).
    assert all(outcome.event is None for _, outcome in outcomes), "a bulk transition published an event"
    return await SqlBookingRepository(session).save_all(outcomes)


async def pause_all(session: AsyncSession, tenant_id: uuid.UUID, reason: str) -> int:
    """The tenant's consent is gone: every booking at work pauses, remembering what it was doing."""
    states = await SqlBookingRepository(session).states(tenant_id, PAUSABLE)
    done = each(states, lambda b: b.pause(reason, hint_for("auth_lost")))
    return await _apply(session, done.outcomes)


async def resume_all(session: AsyncSession, tenant_id: uuid.UUID, now: datetime) -> int:
    """Reconnected: paused bookings (and those that failed on lost consent) go back to work."""
    states = await SqlBookingRepository(session).states(tenant_id, RESUMABLE)
    done = each(states, lambda b: b.resume(now))
    return await _apply(session, done.outcomes)


async def requeue_all(
    session: AsyncSession, now: datetime, tenant_id: uuid.UUID | None = None, error_code: str | None = None
) -> int:
    """Everything open or failed (one tenant's, or everyone's; only failures with ``error_code``
    when given) gets another go now, each from where it stands (``Booking.retry``)."""
    extra = [bookings.c.error_code == error_code] if error_code is not None else []
    states = await SqlBookingRepository(session).states(tenant_id, RETRYABLE, *extra)
    done = each(states, lambda b: b.retry(now))
    return await _apply(session, done.outcomes)
