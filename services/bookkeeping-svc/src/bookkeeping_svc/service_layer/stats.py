"""A tenant's bookings in figures for the operators' overview: how many are in each status and tab
(with the oldest of each tab), and per day what was booked and how long booking took. The latency
runs from the moment Koppel received the payment (the booking's creation) to Twinfield's answer."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from bookkeeping_svc.adapters.orm import bookings
from bookkeeping_svc.domain.booking import TABS


async def booking_stats(session: AsyncSession, tenant_id: uuid.UUID, today: date, days: int) -> dict[str, Any]:
    mine = bookings.c.tenant_id == tenant_id
    counted = sa.select(bookings.c.status, sa.func.count(), sa.func.min(bookings.c.created_at)).where(mine)
    rows = (await session.execute(counted.group_by(bookings.c.status))).all()
    by_status = {status: count for status, count, _ in rows}
    by_tab: dict[str, dict[str, Any]] = {}
    for tab, statuses in TABS.items():
        mine_in_tab = [(count, oldest) for status, count, oldest in rows if status in statuses]
        by_tab[tab] = {
            "count": sum(count for count, _ in mine_in_tab),
            "oldest_created_at": min((oldest for _, oldest in mine_in_tab), default=None),
        }

    since = datetime.combine(today - timedelta(days=days - 1), time.min, tzinfo=UTC)
    day = sa.cast(sa.func.timezone("UTC", bookings.c.booked_at), sa.Date).label("day")
    seconds = sa.func.extract("epoch", bookings.c.booked_at - bookings.c.created_at)
    percentiles = [sa.func.percentile_cont(p).within_group(seconds).label(f"p{int(p * 100)}") for p in (0.5, 0.9, 0.99)]
    per_day_query = (
        sa.select(day, sa.func.count(), sa.func.coalesce(sa.func.sum(bookings.c.amount_cents), 0), *percentiles)
        .where(mine, bookings.c.booked_at >= since)
        .group_by(day)
    )
    found = {r.day: r for r in (await session.execute(per_day_query)).all()}
    per_day = []
    for n in reversed(range(days)):
        on = today - timedelta(days=n)
        r = found.get(on)
        per_day.append(
            {
                "day": on,
                "booked": r[1] if r else 0,
                "booked_cents": int(r[2]) if r else 0,
                "latency_p50_seconds": r.p50 if r else None,
                "latency_p90_seconds": r.p90 if r else None,
                "latency_p99_seconds": r.p99 if r else None,
            }
        )
    return {"by_status": by_status, "by_tab": by_tab, "per_day": per_day}
