"""The engine's pool hands out only live connections, without a round trip per checkout."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from koppel_shared import db
from koppel_shared.db import UnitOfWork, asyncpg_dsn, make_engine, make_session_factory

pytestmark = pytest.mark.integration


async def _backend_pid(factory: async_sessionmaker[AsyncSession]) -> int:
    async with UnitOfWork(factory) as uow:
        pid = int((await uow.session.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())
        await uow.commit()
    return pid


async def test_a_pooled_connection_the_server_closed_is_replaced_before_the_next_transaction(database_url: str):
    engine = make_engine(database_url, 1)
    factory = make_session_factory(engine)
    try:
        first = await _backend_pid(factory)
        admin = await asyncpg.connect(asyncpg_dsn(database_url))  # plays the restarting server
        try:
            await admin.execute("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        await asyncio.sleep(0.2)  # as after a restart: the server's goodbye has arrived
        assert await _backend_pid(factory) != first  # no error: a new connection took its place
    finally:
        await engine.dispose()


async def test_a_connection_idle_for_a_while_is_pinged_and_replaced_if_the_ping_fails(
    database_url: str, monkeypatch: pytest.MonkeyPatch
):
    engine = make_engine(database_url, 1)
    factory = make_session_factory(engine)
    pings: list[object] = []

    def unanswered_ping(self: object) -> None:  # e.g. a firewall dropped the idle connection
        pings.append(self)
        raise ConnectionError("no answer")

    try:
        first = await _backend_pid(factory)
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", unanswered_ping)
        assert await _backend_pid(factory) != first
        assert len(pings) == 1  # the new connection is not pinged: it was just made
    finally:
        await engine.dispose()
