"""A database with the outbox/inbox tables and a test effect table, and a broker per module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from koppel_shared.db import make_engine, make_session_factory
from koppel_shared.messaging.broker import Broker
from koppel_shared.messaging.tables import metadata as messaging_metadata
from koppel_shared.service import Runtime
from koppel_shared.settings import KoppelSettings
from koppel_shared.testing.fixtures import settings_for_test
from koppel_shared.testing.waiting import eventually

effects_metadata = sa.MetaData()
effects = sa.Table(
    "effects",
    effects_metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("event_id", sa.Uuid, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
)


@pytest.fixture(scope="module")
async def runtime(database_url: str, broker_prefix: str, cleanup_exchange: None) -> AsyncIterator[Runtime]:
    settings = settings_for_test(KoppelSettings, database_url, broker_prefix)
    engine = make_engine(database_url, 5)
    async with engine.begin() as conn:
        await conn.run_sync(messaging_metadata.create_all)
        await conn.run_sync(effects_metadata.create_all)
    await engine.dispose()
    rt = await Runtime.open("shared", settings)
    yield rt
    await rt.close()


@pytest.fixture
async def clean(runtime: Runtime) -> None:
    async with runtime.engine.begin() as conn:
        await conn.execute(sa.text("TRUNCATE outbox, inbox, effects"))


async def count(runtime: Runtime, sql: str, **params: object) -> int:
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(sa.text(sql), params)).scalar_one())


__all__ = ["Broker", "count", "effects", "eventually", "make_session_factory"]
