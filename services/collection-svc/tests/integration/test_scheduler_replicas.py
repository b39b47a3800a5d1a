"""Two scheduler replicas (two workers, each with its own engine and broker connection) working
the same due collections: every invoice is submitted exactly once, in bulk commands."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from collection_svc.bootstrap import make_definition
from collection_svc.domain.invoices import InvoiceInput
from collection_svc.service_layer.engine import submit_due
from collection_svc.service_layer.invoices import post_invoice
from collection_svc.settings import Settings
from koppel_shared.db import UnitOfWork, make_session_factory
from koppel_shared.events import new_event
from koppel_shared.events.mandate import MandateSigned
from koppel_shared.migrations import migrate
from koppel_shared.testing.fixtures import settings_for_test
from koppel_shared.testing.service_checks import worker
from koppel_shared.testing.waiting import eventually

pytestmark = pytest.mark.integration

N = 600


async def test_two_scheduler_replicas_never_submit_the_same_invoice_twice(
    database_url: str, broker_prefix: str, cleanup_exchange: None
) -> None:
    now = datetime(2026, 2, 1, 9, tzinfo=UTC)
    definition = make_definition(lambda: now)
    settings = settings_for_test(
        Settings, database_url, broker_prefix, scheduler_interval_seconds=0.05, scheduler_batch_size=25
    )
    await migrate(definition.migrations_dir, settings.database_url)
    engine = create_async_engine(settings.database_url)
    factory = make_session_factory(engine)
    tenants = [uuid.uuid4(), uuid.uuid4()]

    # the scheduler is off while the invoices are prepared: a mandate per tenant, N due invoices
    from collection_svc.service_layer.reactions import on_mandate

    for tenant in tenants:
        envelope = new_event(
            MandateSigned(
                mandate_id=f"m-{tenant}",
                mandate_number="KOP-R",
                customer_number="C-1",
                status="active",
                scheme="CORE",
                version=1,
                updated_at=now,
            ),
            tenant_id=tenant,
        )
        async with UnitOfWork(factory) as uow:
            await on_mandate(envelope, MandateSigned(**envelope.data), uow, lambda: now)
            await uow.commit()
    for i in range(N):
        async with UnitOfWork(factory) as uow:
            data = InvoiceInput(
                f"R-{i}", "C-1", None, None, 1000 + i, "EUR", date(2026, 2, 1), date(2026, 2, 1), f"Invoice {i}", None
            )
            await post_invoice(uow, tenants[i % 2], data, None, now)
            await uow.commit()

    async def remaining() -> int:
        async with engine.connect() as conn:
            return int(
                (
                    await conn.execute(sa.text("SELECT count(*) FROM collections WHERE status = 'scheduled'"))
                ).scalar_one()
            )

    assert await remaining() == N

    async def none_left() -> bool:
        return await remaining() == 0

    # two worker replicas plus two more bare schedulers hammering the same rows
    async with worker(definition, settings), worker(definition, settings):
        extra = await asyncio.gather(*(submit_due(factory, now, 10) for _ in range(4)))
        await eventually(none_left, within=60)
    assert sum(extra) <= N

    async with engine.connect() as conn:
        bodies = (
            (await conn.execute(sa.text("SELECT body FROM outbox WHERE type = 'sync.collect_requested'")))
            .scalars()
            .all()
        )
        submitted = (
            await conn.execute(sa.text("SELECT count(*) FROM collections WHERE status = 'submitted' AND version = 2"))
        ).scalar_one()
    items = [item for body in bodies for item in json.loads(body)["data"]["items"]]
    ids = [item["collection_id"] for item in items]
    assert len(ids) == N and len(set(ids)) == N
    assert submitted == N
    # commands are per tenant and in bulk
    for body in bodies:
        envelope = json.loads(body)
        assert envelope["tenant_id"] in {str(t) for t in tenants}
        assert 1 <= len(envelope["data"]["items"]) <= 25
    await engine.dispose()
