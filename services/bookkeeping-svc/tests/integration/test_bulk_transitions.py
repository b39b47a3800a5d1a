"""Pause, resume and requeue many bookings in PostgreSQL: each booking's row gets what its own
transition decided (what it was doing survives a pause), the version moves like any other stored
transition, and only the tenant (and error code) asked for is touched."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from bookkeeping_svc.adapters.orm import bookings
from bookkeeping_svc.bootstrap import definition
from bookkeeping_svc.service_layer.booking import bulk
from koppel_shared.migrations import migrate

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await migrate(definition.migrations_dir, database_url)
    engine = create_async_engine(database_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


def row(tenant: uuid.UUID, key: str, **values: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "tenant_id": tenant,
        "collection_id": f"col-{key}-{uuid.uuid4()}",
        "payment_kind": "transaction",
        "twikey_id": f"{uuid.uuid4().int % 10**12}",
        "reference": f"TX{key}",
        "invoice_number": f"INV-{key}",
        "customer_number": "C-1",
        "amount_cents": 1250,
        "method": "direct_debit",
        "paid_on": NOW.date(),
        "next_attempt_at": NOW + timedelta(hours=6),
        # every row names the same columns: an executemany takes its columns from the first row
        **{"memo_number": None, "memo_line": None, "reverse_requested": False, "matched_at": None},
        **{"error_code": None, "transient_failures": 0},
        **values,
    }


async def seed(sessions: async_sessionmaker[AsyncSession], tenant: uuid.UUID) -> dict[str, uuid.UUID]:
    made = {
        "open": row(tenant, "open", status="open"),
        "booked": row(tenant, "booked", status="booked", memo_number="202500101", memo_line=2),
        "reversing": row(tenant, "rev", status="reversing", memo_number="202500102", reverse_requested=True),
        "matched": row(tenant, "matched", status="matched", memo_number="202500103", matched_at=NOW),
        "failed": row(tenant, "failed", status="error", error_code="validation", transient_failures=4),
        "unavailable": row(tenant, "unav", status="error", error_code="unavailable", memo_number="202500104"),
    }
    async with sessions.begin() as session:
        await session.execute(sa.insert(bookings), list(made.values()))
    return {key: r["id"] for key, r in made.items()}


async def states(sessions: async_sessionmaker[AsyncSession], tenant: uuid.UUID) -> dict[uuid.UUID, Any]:
    async with sessions() as session:
        rows = (await session.execute(sa.select(bookings).where(bookings.c.tenant_id == tenant))).all()
    return {r.id: r for r in rows}


async def test_pause_keeps_what_each_booking_did_and_resume_gives_it_back(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    ids = await seed(sessions, tenant)
    await seed(sessions, other)
    async with sessions.begin() as session:
        assert await bulk.pause_all(session, tenant, "invalid_grant") == 3
    paused = await states(sessions, tenant)
    assert {key: (paused[i].status, paused[i].paused_from) for key, i in ids.items()} == {
        "open": ("paused", "open"),
        "booked": ("paused", "booked"),
        "reversing": ("paused", "reversing"),
        "matched": ("matched", None),
        "failed": ("error", None),
        "unavailable": ("error", None),
    }
    assert paused[ids["booked"]].error_code == "auth_lost" and paused[ids["booked"]].hint
    assert paused[ids["booked"]].version == 2 and paused[ids["matched"]].version == 1
    assert {r.status for r in (await states(sessions, other)).values()} >= {"open", "booked"}  # not touched

    async with sessions.begin() as session:
        assert await bulk.resume_all(session, tenant, NOW) == 3
    resumed = await states(sessions, tenant)
    assert {key: resumed[i].status for key, i in ids.items()} == {
        "open": "open",
        "booked": "booked",
        "reversing": "reversing",
        "matched": "matched",
        "failed": "error",  # failed for another reason: resuming is not a retry
        "unavailable": "error",
    }
    assert all(resumed[ids[k]].paused_from is None and resumed[ids[k]].error_code is None for k in ("open", "booked"))


async def test_requeue_picks_each_failure_up_where_it_stands_and_only_the_code_asked_for(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    ids = await seed(sessions, tenant)
    other_ids = await seed(sessions, other)
    async with sessions.begin() as session:
        assert await bulk.requeue_all(session, NOW, tenant, "unavailable") == 1
    after = await states(sessions, tenant)
    assert after[ids["unavailable"]].status == "booked"  # its MEMO is in Twinfield: match it, never post again
    assert after[ids["failed"]].status == "error"

    async with sessions.begin() as session:
        assert await bulk.requeue_all(session, NOW, tenant) == 5  # all but the matched booking
    after = await states(sessions, tenant)
    assert after[ids["failed"]].status == "posting"  # no MEMO number: look it up before posting again
    assert after[ids["failed"]].transient_failures == 0
    assert after[ids["open"]].next_attempt_at <= NOW + timedelta(seconds=1)
    assert after[ids["matched"]].next_attempt_at > NOW + timedelta(hours=1)
    untouched = await states(sessions, other)
    assert untouched[other_ids["failed"]].status == "error"
    assert untouched[other_ids["open"]].next_attempt_at > NOW + timedelta(hours=1)
