"""Migration 0005 starts each mandate's history from the events the outbox still holds."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from koppel_shared.migrations import drop_database, ensure_database, upgrade
from koppel_shared.testing.fixtures import PG_BASE, unique_name
from mandate_svc.bootstrap import definition

pytestmark = pytest.mark.integration


async def test_history_is_filled_from_the_mandate_events_left_in_the_outbox() -> None:
    url = f"{PG_BASE}/{unique_name('db')}"
    await ensure_database(url)
    engine = create_async_engine(url)
    try:
        await asyncio.to_thread(upgrade, definition.migrations_dir, url, "0004")
        tenant, mandate = uuid.uuid4(), str(uuid.uuid4())
        rows = [
            ("mandate.prepared", {"mandate_id": mandate, "status": "prepared"}),
            ("mandate.cancelled", {"mandate_id": mandate, "status": "cancelled", "reason": "wrong customer"}),
            ("sync.mandate_action_requested", {"mandate_number": "KOP1", "action": "cancel"}),  # no mandate id
            ("system.ping", {"sender": "t"}),
        ]
        async with engine.begin() as conn:
            for kind, data in rows:
                await conn.execute(
                    sa.text(
                        "INSERT INTO outbox (id, type, tenant_id, body, occurred_at) "
                        "VALUES (:id, :type, :t, :body, :at)"
                    ),
                    {
                        "id": uuid.uuid4(), "type": kind, "t": tenant, "at": datetime.now(UTC),
                        "body": json.dumps({"type": kind, "data": data}),
                    },
                )  # fmt: skip
        await asyncio.to_thread(upgrade, definition.migrations_dir, url)
        async with engine.connect() as conn:
            found = (
                await conn.execute(
                    sa.text("SELECT type, status, reason FROM mandate_history WHERE mandate_id = :m ORDER BY seq"),
                    {"m": mandate},
                )
            ).all()
            total = (await conn.execute(sa.text("SELECT count(*) FROM mandate_history"))).scalar_one()
        assert [tuple(r) for r in found] == [
            ("mandate.prepared", "prepared", None),
            ("mandate.cancelled", "cancelled", "wrong customer"),
        ]
        assert total == 2
    finally:
        await engine.dispose()
        await drop_database(url)
