"""A tenant's invoices in figures for the operators' overview: how many are in each status with the
oldest of each, what was collected and paid per day, and the Twikey updates parked because
applying them failed."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from collection_svc.adapters.orm import collections, invoices, twikey_updates


async def invoice_stats(session: AsyncSession, tenant_id: uuid.UUID, today: date, days: int) -> dict[str, Any]:
    # The current attempt per invoice, as in the lists: the latest that was not withdrawn.
    current = (
        sa.select(collections.c.invoice_id, collections.c.status)
        .where(collections.c.tenant_id == tenant_id)
        .ext(distinct_on(collections.c.invoice_id))
        .order_by(collections.c.invoice_id, (collections.c.status == "withdrawn").asc(), collections.c.attempt.desc())
        .subquery("current")
    )
    status = sa.case(
        (invoices.c.withdrawn_at.is_not(None), "withdrawn"),
        else_=sa.func.coalesce(current.c.status, "open"),
    ).label("status")
    by_status = (
        sa.select(status, sa.func.count(), sa.func.min(invoices.c.created_at))
        .select_from(invoices.outerjoin(current, current.c.invoice_id == invoices.c.id))
        .where(invoices.c.tenant_id == tenant_id)
        .group_by(status)
    )
    statuses = {
        name: {"count": count, "oldest_created_at": oldest}
        for name, count, oldest in (await session.execute(by_status)).all()
    }
    since = datetime.combine(today - timedelta(days=days - 1), time.min, tzinfo=UTC)
    per_day = {
        (today - timedelta(days=n)): {"collected": 0, "collected_cents": 0, "paid": 0, "paid_cents": 0}
        for n in range(days)
    }
    for column, key in ((collections.c.submitted_at, "collected"), (collections.c.paid_at, "paid")):
        day = sa.cast(sa.func.timezone("UTC", column), sa.Date).label("day")
        query = (
            sa.select(day, sa.func.count(), sa.func.coalesce(sa.func.sum(invoices.c.amount_cents), 0))
            .select_from(collections.join(invoices, invoices.c.id == collections.c.invoice_id))
            .where(collections.c.tenant_id == tenant_id, column >= since)
            .group_by(day)
        )
        for on, count, cents in (await session.execute(query)).all():
            if on in per_day:
                per_day[on][key] = count
                per_day[on][f"{key}_cents"] = int(cents)
    parked = sa.select(sa.func.count()).where(
        twikey_updates.c.tenant_id == tenant_id, twikey_updates.c.failed_at.is_not(None)
    )
    return {
        "by_status": statuses,
        "parked_updates": (await session.execute(parked)).scalar_one(),
        "per_day": [{"day": on, **figures} for on, figures in sorted(per_day.items())],
    }
