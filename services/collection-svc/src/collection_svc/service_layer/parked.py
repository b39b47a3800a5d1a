"""Twikey updates parked because applying them failed on their own (``transactions.py``): listed
for an operator with the error, and put back in line for the applier, which tries them again on
its next pass. A retried message keeps its place in arrival order; one whose feed entry the
collection has meanwhile passed is ignored as stale, as a replay would be."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from collection_svc.adapters.orm import twikey_updates

_parked = twikey_updates.c.failed_at.is_not(None)


async def list_parked(session: AsyncSession, tenant_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    """The tenant's parked updates, oldest first."""
    t = twikey_updates.c
    stmt = (
        sa.select(t.seq, t.event_id, t.event_type, t.correlation_id, t.received_at, t.failed_at, t.error, t.data)
        .where(t.tenant_id == tenant_id, _parked)
        .order_by(t.seq)
        .limit(limit)
    )
    return [dict(row._mapping) for row in (await session.execute(stmt)).all()]


async def retry_parked(session: AsyncSession, tenant_id: uuid.UUID, seqs: Sequence[int] | None) -> list[int]:
    """Put the tenant's parked updates ``seqs`` (``None``: all of them) back in line; returns the
    ones that were parked. Another tenant's, or one not parked, is left as it is."""
    t = twikey_updates.c
    stmt = sa.update(twikey_updates).where(t.tenant_id == tenant_id, _parked)
    if seqs is not None:
        stmt = stmt.where(t.seq.in_(list(seqs)))
    stmt = stmt.values(failed_at=None, error=None).returning(t.seq)
    return sorted(seq for (seq,) in (await session.execute(stmt)).all())


async def count_parked(session: AsyncSession) -> int:
    """Parked updates of every tenant (the ``/metrics`` gauge)."""
    return int((await session.execute(sa.select(sa.func.count()).where(_parked))).scalar_one())
