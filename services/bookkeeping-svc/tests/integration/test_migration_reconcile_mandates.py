"""Migration 0007 on an installation that already put signed mandates on Twinfield customers:
Koppel's record of mandates starts with their numbers (the latest version of each), so the first
reconciliation does not call Koppel's own mandates unknown."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bookkeeping_svc.bootstrap import definition
from koppel_shared.migrations import upgrade

pytestmark = pytest.mark.integration

INSERT = sa.text(
    "INSERT INTO customer_updates (id, tenant_id, mandate_id, mandate_version, customer_code, iban, "
    "mandate_number, status) VALUES (:id, :tenant, :mandate, :version, '1001', 'BE68539007547034', :number, 'done')"
)


async def test_mandates_signed_before_the_record_existed_are_known_from_customer_updates(database_url: str) -> None:
    await asyncio.to_thread(upgrade, definition.migrations_dir, database_url, "0006")
    tenant = uuid.uuid4()
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            for mandate, version, number in (("m1", 2, "KOP1"), ("m1", 4, "KOP1"), ("m2", 2, "KOP2"), ("m3", 2, None)):
                values = {
                    "id": uuid.uuid4(),
                    "tenant": tenant,
                    "mandate": mandate,
                    "version": version,
                    "number": number,
                }
                await conn.execute(INSERT, values)
        await asyncio.to_thread(upgrade, definition.migrations_dir, database_url, "0007")
        async with engine.begin() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT mandate_number, mandate_id, version FROM koppel_mandates WHERE tenant_id = :t "
                    "ORDER BY mandate_number"
                ),
                {"t": tenant},
            )
            assert [tuple(r) for r in rows] == [("KOP1", "m1", 4), ("KOP2", "m2", 2)]
    finally:
        await engine.dispose()
