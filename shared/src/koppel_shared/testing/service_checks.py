"""Checks every service skeleton must pass, called from each service's own tests: migrations
run, the API answers health and readiness, and the worker consumes an event that went through
its outbox, the broker and its inbox."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import sqlalchemy as sa
from asgi_lifespan import LifespanManager

from koppel_shared.events import new_event
from koppel_shared.events.system import Ping
from koppel_shared.migrations import migrate
from koppel_shared.service import Runtime, ServiceDefinition, build_api, run_worker
from koppel_shared.settings import KoppelSettings
from koppel_shared.testing.waiting import eventually


@contextlib.asynccontextmanager
async def api_client(
    definition: ServiceDefinition[Any, Any], settings: KoppelSettings
) -> AsyncIterator[httpx.AsyncClient]:
    app = build_api(definition, settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            yield client


@contextlib.asynccontextmanager
async def worker(definition: ServiceDefinition[Any, Any], settings: KoppelSettings) -> AsyncIterator[None]:
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_worker(definition, settings, stop, started))
    # Until its queues are bound, an event published now would be routed nowhere and lost: wait
    # for the worker to say it listens (a fixed pause lost the first event on a busy machine).
    ready = asyncio.create_task(started.wait())
    await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if task.done():
        task.result()
    if not started.is_set():
        stop.set()
        raise TimeoutError(f"the {definition.name} worker did not start within 60 s")
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def check_service_round_trip(definition: ServiceDefinition[Any, Any], settings: KoppelSettings) -> None:
    await migrate(definition.migrations_dir, settings.database_url)
    await migrate(definition.migrations_dir, settings.database_url)  # idempotent
    async with api_client(definition, settings) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert (await client.get("/openapi.json")).status_code == 200
    async with worker(definition, settings):
        runtime = await Runtime.open(definition.name, settings, connect_broker=False)
        try:
            ping = new_event(Ping(sender="test", note=definition.name), tenant_id=None)
            async with runtime.uow() as uow:
                await uow.emit(ping)
                await uow.commit()

            async def consumed() -> bool:
                async with runtime.engine.connect() as conn:
                    row = await conn.execute(
                        sa.text("SELECT consumer FROM inbox WHERE event_id = :id"), {"id": ping.id}
                    )
                    return row.first() is not None

            await eventually(consumed, within=15)
        finally:
            await runtime.close()
