"""A dead endpoint does not hold up the others, and is not hammered.

The worker here is deliberately small — two attempts in flight on the main budget, one per
endpoint — and the attempt deadline is long (30 s). Endpoints that accept the connection and never
answer would, without isolation, take both main slots for the whole deadline and the healthy
endpoint's deliveries would wait 30 s; the bound below is a third of that.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from notify_support import Receiver, Stack, mandate_signed, notify_settings, running_stack, wait_until

from koppel_shared.testing.serving import free_port
from notify_svc.adapters.orm import deliveries

pytestmark = pytest.mark.integration

DEADLINE = 30.0  # what a hanging attempt costs if nothing else frees its slot
BOUND = 10.0  # the healthy endpoint's deliveries all arrive within this
PER_ENDPOINT = 1
BREAKER_FAILURES = 3


class DeadServer:
    """Accepts connections, reads what is sent and never answers."""

    def __init__(self) -> None:
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        self._writers.append(writer)
        try:
            while await reader.read(65536):
                pass
        except Exception:
            pass
        finally:
            self.open -= 1

    async def stop(self) -> None:
        for w in self._writers:
            w.close()
        if self._server is not None:
            self._server.close()


@pytest.fixture(scope="module")
async def stack(database_url: str, broker_prefix: str, cleanup_exchange: None) -> AsyncIterator[Stack]:
    settings = notify_settings(
        database_url,
        broker_prefix,
        delivery_max_in_flight=2,
        delivery_max_in_flight_per_endpoint=PER_ENDPOINT,
        delivery_max_slow_in_flight=16,
        delivery_slow_after_seconds=0.5,
        delivery_timeout_seconds=DEADLINE,
        delivery_connect_timeout_seconds=1.0,
        delivery_lease_seconds=3 * DEADLINE,
        delivery_breaker_failures=BREAKER_FAILURES,
        delivery_breaker_cooldown_seconds=60.0,
        delivery_breaker_max_cooldown_seconds=120.0,
        disable_after_failures=1000,  # the breaker, not the disable policy, is under test
    )
    async with running_stack(settings) as s:
        yield s


async def make_endpoint(stack: Stack, tenant: uuid.UUID, url: str) -> str:
    r = await stack.client.post("/v1/webhook-endpoints", json={"url": url}, headers=stack.headers(tenant))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def attempts_of(stack: Stack, endpoint_id: str) -> int:
    async with stack.runtime.engine.connect() as conn:
        q = sa.select(sa.func.coalesce(sa.func.sum(deliveries.c.attempts), 0)).where(
            deliveries.c.endpoint_id == uuid.UUID(endpoint_id)
        )
        return int((await conn.execute(q)).scalar_one())


async def _true(value: bool) -> bool:
    return value


async def test_endpoints_that_hang_do_not_hold_up_a_healthy_endpoint(stack: Stack, receiver: Receiver) -> None:
    tenant = uuid.uuid4()
    dead = [DeadServer(), DeadServer()]
    try:
        # First the dead endpoints alone: their hanging attempts take both main slots.
        for server in dead:
            await make_endpoint(stack, tenant, await server.start())
        await stack.publish(mandate_signed(tenant))
        await wait_until(lambda: _true(all(s.open == 1 for s in dead)), within=BOUND)

        await make_endpoint(stack, tenant, receiver.url("beside-the-dead"))
        events = [mandate_signed(tenant) for _ in range(10)]
        await stack.publish(*events)

        # Far below the deadline: slots held by the hanging attempts would cost DEADLINE seconds.
        await wait_until(lambda: _true(len(receiver.at("beside-the-dead")) == len(events)), within=BOUND)
        assert {h.headers["webhook-id"] for h in receiver.at("beside-the-dead")} == {str(e.id) for e in events}
        for server in dead:
            assert server.accepted == PER_ENDPOINT  # still hanging; its backlog stayed in the database
            assert server.max_open == PER_ENDPOINT
    finally:
        for server in dead:
            await server.stop()


async def test_an_endpoint_that_refuses_connections_is_paused_after_a_few_attempts(
    stack: Stack, receiver: Receiver
) -> None:
    tenant = uuid.uuid4()
    refused = await make_endpoint(stack, tenant, f"http://127.0.0.1:{free_port()}/hook")  # nothing listens
    await make_endpoint(stack, tenant, receiver.url("beside-the-refused"))
    events = [mandate_signed(tenant) for _ in range(10)]
    await stack.publish(*events)

    await wait_until(lambda: _true(len(receiver.at("beside-the-refused")) == len(events)), within=BOUND)
    # Each of its 10 deliveries is due again 0.05–0.2 s after a failure (the test schedule), so
    # without the breaker it would be tried dozens of times in these two seconds; with it, only
    # the attempts that ended before the breaker opened and those already in flight.
    await asyncio.sleep(2.0)
    assert 1 <= await attempts_of(stack, refused) <= (BREAKER_FAILURES - 1) + PER_ENDPOINT
