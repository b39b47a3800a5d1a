"""A tenant's invoices in figures for the operators' overview: how many are in each status with the
oldest of each, the Twikey updates parked because applying them failed, and what was collected and
paid per day. The counts are one pass over the tenant's collections; the days are read through
indexes on the submission and payment times. The two are separate calls so that a page can ask for
both at once."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from collection_svc.adapters.orm import twikey_updates

# An invoice's status is its current attempt's (the latest one not withdrawn, else the latest):
# the attempts no other attempt of the same invoice outranks; how long it has been in it counts
# from that attempt's creation. "open": no attempt yet, counted from the invoice's posting.
_BY_STATUS = sa.text(
    """SELECT c.status, count(*), min(c.created_at)
       FROM collections c
       WHERE c.tenant_id = :tenant AND NOT EXISTS (
           SELECT 1 FROM collections b
           WHERE b.invoice_id = c.invoice_id AND b.id <> c.id
             AND ((b.status <> 'withdrawn') > (c.status <> 'withdrawn')
                  OR ((b.status <> 'withdrawn') = (c.status <> 'withdrawn') AND b.attempt > c.attempt)))
       GROUP BY c.status
       UNION ALL
       SELECT CASE WHEN i.withdrawn_at IS NULL THEN 'open' ELSE 'withdrawn' END, count(*), min(i.created_at)
       FROM invoices i
       WHERE i.tenant_id = :tenant AND NOT EXISTS (SELECT 1 FROM collections c WHERE c.invoice_id = i.id)
       GROUP BY 1"""
)

# Each collection counts on the day it was submitted and on the day it was paid (both read through
# their indexes from the first day on).
_PER_DAY = sa.text(
    """SELECT (timezone('UTC', m.at))::date AS day, m.kind, count(*), coalesce(sum(i.amount_cents), 0)
       FROM (SELECT 'collected' AS kind, c.submitted_at AS at, c.invoice_id FROM collections c
             WHERE c.tenant_id = :tenant AND c.submitted_at >= :since
             UNION ALL
             SELECT 'paid', c.paid_at, c.invoice_id FROM collections c
             WHERE c.tenant_id = :tenant AND c.paid_at >= :since) AS m
       JOIN invoices i ON i.id = m.invoice_id
       GROUP BY 1, 2"""
)


async def _in_memory(session: AsyncSession) -> None:
    # A tenant's every collection is hashed: in memory, not in temporary files (this transaction only).
    await session.execute(sa.text("SET LOCAL work_mem = '64MB'"))


async def invoice_counts(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, Any]:
    await _in_memory(session)
    statuses: dict[str, dict[str, Any]] = {}
    for name, count, oldest in (await session.execute(_BY_STATUS, {"tenant": tenant_id})).all():
        known = statuses.setdefault(name, {"count": 0, "oldest_created_at": oldest})
        known["count"] += count
        known["oldest_created_at"] = min(known["oldest_created_at"], oldest)
    parked = sa.select(sa.func.count()).where(
        twikey_updates.c.tenant_id == tenant_id, twikey_updates.c.failed_at.is_not(None)
    )
    return {"by_status": statuses, "parked_updates": (await session.execute(parked)).scalar_one()}


async def invoices_per_day(session: AsyncSession, tenant_id: uuid.UUID, today: date, days: int) -> dict[str, Any]:
    await _in_memory(session)
    since = datetime.combine(today - timedelta(days=days - 1), time.min, tzinfo=UTC)
    per_day = {
        (today - timedelta(days=n)): {"collected": 0, "collected_cents": 0, "paid": 0, "paid_cents": 0}
        for n in range(days)
    }
    for on, kind, count, cents in (await session.execute(_PER_DAY, {"tenant": tenant_id, "since": since})).all():
        if on in per_day:
            per_day[on][kind] = count
            per_day[on][f"{kind}_cents"] = int(cents)
    return {"per_day": [{"day": on, **figures} for on, figures in sorted(per_day.items())]}
