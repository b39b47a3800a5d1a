"""Fixtures: the Twikey sandbox and sync-svc's API served for real on loopback ports (so the
sandbox's webhooks reach us over HTTP), a migrated database, a tap queue on the test exchange,
and a fresh tenant connected to its own sandbox creditor per test."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aio_pika
import httpx
import pytest

from koppel_shared.auth import issue_token
from koppel_shared.messaging.topology import declare_exchange
from koppel_shared.migrations import migrate
from koppel_shared.service import Runtime, build_api
from koppel_shared.testing.fixtures import AMQP_URL, TEST_SIGNING_KEY
from koppel_shared.testing.serving import Served, free_port
from sync_svc.bootstrap import definition
from sync_svc.service_layer.resources import Resources, open_resources
from sync_svc.settings import Settings
from sync_svc.testing import sync_settings_for_test
from twikey_sandbox import create_app
from twikey_sandbox.testing import ResponseRecorder, koppel_connection


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Served]:
    # Served through a recorder: every Twikey response sync-svc provokes is checked below.
    with Served(ResponseRecorder(create_app(fault_seed=7))) as served:
        yield served


@pytest.fixture(autouse=True)
def twikey_keeps_its_contract(request: pytest.FixtureRequest) -> Iterator[None]:
    """What sync-svc is tested against answers as Twikey's description says (status codes,
    bodies, headers): a breach of ``twikey_sandbox.contract`` fails the test that provoked it."""
    if "sandbox" not in request.fixturenames:
        yield
        return
    recorder: ResponseRecorder = request.getfixturevalue("sandbox").app
    first = len(recorder.seen)
    yield
    if breaches := recorder.breaches(since=first):
        pytest.fail("Twikey sandbox responses break the contract:\n" + "\n".join(breaches), pytrace=False)


@pytest.fixture(scope="module")
def api_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
async def settings(database_url: str, broker_prefix: str, cleanup_exchange: None, api_port: int) -> Settings:
    s = sync_settings_for_test(database_url, broker_prefix, api_port)
    await migrate(definition.migrations_dir, s.database_url)
    return s


@pytest.fixture(scope="module")
def sync_api(settings: Settings, api_port: int) -> Iterator[str]:
    with Served(build_api(definition, settings), api_port) as server:
        yield server.base


@pytest.fixture(scope="module")
async def opened(settings: Settings) -> AsyncIterator[tuple[Runtime[Settings], Resources]]:
    """A runtime and the service's resources in the test's own loop, for calling use cases
    directly (no broker needed)."""
    rt = await Runtime.open(definition.name, settings, connect_broker=False)
    resources = await open_resources(rt)
    yield rt, resources
    await rt.close()


@pytest.fixture(scope="module")
def runtime(opened: tuple[Runtime[Settings], Resources]) -> Runtime[Settings]:
    return opened[0]


@pytest.fixture(scope="module")
def resources(opened: tuple[Runtime[Settings], Resources]) -> Resources:
    return opened[1]


@dataclass
class Tap:
    """A queue bound to the test exchange that keeps every twikey.* event published."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == type_]

    async def wait_for(self, type_: str, count: int, within: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while len(self.of_type(type_)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.of_type(type_))} of {count} {type_} events within {within} s")
            await asyncio.sleep(0.05)
        return self.of_type(type_)


@pytest.fixture
async def tap(settings: Settings) -> AsyncIterator[Tap]:
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    exchange = await declare_exchange(channel, settings.exchange)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange, routing_key="twikey.#")
    tap = Tap()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            tap.messages.append(json.loads(message.body))

    await queue.consume(on_message)
    yield tap
    await connection.close()


@dataclass
class Tenant:
    tenant_id: uuid.UUID
    api_key: str
    core: int
    b2b: int
    operator: httpx.AsyncClient  # sync-svc API with an operator token
    internal: httpx.AsyncClient  # sync-svc API with an internal token
    control: httpx.AsyncClient  # sandbox /_sandbox

    async def signed_mandate(self, **sign: Any) -> str:
        """Invite through sync-svc and let the debtor sign at the sandbox; the mandate number."""
        r = await self.internal.post(
            "/internal/v1/mandates/invite",
            json={"reference": str(uuid.uuid4()), "scheme": "CORE", "delivery": "link", "name": "An Peeters"},
        )
        assert r.status_code == 200, r.text
        number = r.json()["mandate_number"]
        body = {"iban": "BE68539007547034", "bic": "GKCCBEBB", **sign}
        signed = await self.control.post(f"/mandates/{number}/sign", json=body)
        assert signed.status_code == 200, signed.text
        return str(number)


@pytest.fixture
async def control(sandbox: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{sandbox.base}/_sandbox", timeout=60) as client:
        yield client
        await client.delete("/faults")


@pytest.fixture
async def tenant(
    sandbox: Served, sync_api: str, settings: Settings, control: httpx.AsyncClient
) -> AsyncIterator[Tenant]:
    tenant_id = uuid.uuid4()
    secret = TEST_SIGNING_KEY
    made = (await control.post("/creditors", json={"webhook_url": f"{sync_api}/webhooks/twikey/{tenant_id}"})).json()
    operator_token = issue_token(secret, tenant_id, ["operator"], ttl=timedelta(hours=1))
    internal_token = issue_token(secret, tenant_id, ["internal"], ttl=timedelta(hours=1))
    async with (
        httpx.AsyncClient(base_url=sync_api, headers={"Authorization": f"Bearer {operator_token}"}, timeout=30) as op,
        httpx.AsyncClient(base_url=sync_api, headers={"Authorization": f"Bearer {internal_token}"}, timeout=30) as it,
    ):
        r = await op.put(
            "/v1/twikey/connection",
            json=koppel_connection(made, sandbox.base),
        )
        assert r.status_code == 200, r.text
        yield Tenant(
            tenant_id=tenant_id,
            api_key=made["api_key"],
            core=made["templates"]["CORE"],
            b2b=made["templates"]["B2B"],
            operator=op,
            internal=it,
            control=control,
        )
