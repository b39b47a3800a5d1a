"""Test support for notify-svc: a real webhook receiver on a loopback port, the service stack
(migrated database, API client, in-process worker), and publishing public events to the test
exchange the way the other services do."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import aio_pika
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from koppel_shared.auth import issue_token
from koppel_shared.events import Envelope, new_event
from koppel_shared.events.collection import CollectionPaid
from koppel_shared.events.mandate import MandateSigned
from koppel_shared.messaging.broker import Broker
from koppel_shared.migrations import migrate
from koppel_shared.service import Runtime
from koppel_shared.testing.fixtures import AMQP_URL, TEST_SIGNING_KEY
from koppel_shared.testing.service_checks import api_client, worker
from koppel_shared.testing.serving import Served, free_port
from notify_svc.adapters.network import Resolver
from notify_svc.bootstrap import definition, open_dependencies
from notify_svc.settings import Settings


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Answers POST /<anything>. ``script[path]`` is a list of answers used one per request
    (an int status, or "hang" to answer only after ``hang_seconds``); then ``default``."""

    base: str
    hits: list[Hit] = field(default_factory=list)
    script: dict[str, list[int | str]] = field(default_factory=dict)
    default: dict[str, int | str] = field(default_factory=dict)
    hang_seconds: float = 3.0

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def at(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == "/" + path.lstrip("/")]

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            body = await request.body()
            path = request.url.path
            self.hits.append(Hit(path, dict(request.headers), body, time.time()))
            queue = self.script.get(path)
            answer = queue.pop(0) if queue else self.default.get(path, 204)
            if answer == "hang":
                await asyncio.sleep(self.hang_seconds)
                return Response(status_code=200)
            return Response(status_code=int(answer))

        return Starlette(routes=[Route("/{path:path}", handle, methods=["POST"])])


@contextlib.contextmanager
def running_receiver() -> Any:
    port = free_port()
    receiver = Receiver(base=f"http://127.0.0.1:{port}")
    with Served(receiver.app(), port):
        yield receiver


def notify_settings(database_url: str, prefix: str, **overrides: Any) -> Settings:
    from koppel_shared.testing.fixtures import settings_for_test

    values: dict[str, Any] = {
        "webhook_allow_http": True,
        "webhook_allowed_networks": ["127.0.0.1/32"],
        "delivery_schedule_seconds": [0.05, 0.1, 0.2, 0.2, 0.2],
        "delivery_jitter": 0.0,
        "delivery_timeout_seconds": 0.5,
        "delivery_connect_timeout_seconds": 0.5,
        "delivery_lease_seconds": 3.0,
        "delivery_poll_seconds": 0.1,
        "disable_after_failures": 4,
        "disable_after_failing_seconds": 0,
        # Pauses as short as the retry schedule, so the retry and disable tests see every attempt.
        "delivery_breaker_cooldown_seconds": 0.1,
        "delivery_breaker_max_cooldown_seconds": 0.2,
    }
    values.update(overrides)
    return settings_for_test(Settings, database_url, prefix, **values)


@dataclass
class Stack:
    settings: Settings
    client: httpx.AsyncClient
    broker: Broker
    runtime: Runtime  # for direct looks into the database

    def headers(self, tenant: uuid.UUID) -> dict[str, str]:
        token = issue_token(TEST_SIGNING_KEY, tenant, ["erp"])
        return {"Authorization": f"Bearer {token}"}

    async def publish(self, *envelopes: Envelope) -> None:
        for e in envelopes:
            await self.broker.publish(e)


async def _wait_for_queue(settings: Settings) -> None:
    name = f"{settings.queue_prefix}notify.public-events"
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        for _ in range(200):
            channel = await connection.channel()
            try:
                await channel.declare_queue(name, passive=True)
                return
            except aio_pika.exceptions.ChannelClosed:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"queue {name} was not declared")


@contextlib.asynccontextmanager
async def running_stack(settings: Settings, resolver: Resolver | None = None) -> AsyncIterator[Stack]:
    await migrate(definition.migrations_dir, settings.database_url)
    service = replace(definition, dependencies=partial(open_dependencies, resolver=resolver))
    async with api_client(service, settings) as client, worker(service, settings):
        await _wait_for_queue(settings)
        broker = Broker(settings.amqp_url.get_secret_value(), settings.exchange)
        await broker.connect()
        runtime = await Runtime.open("notify", settings, connect_broker=False)
        try:
            yield Stack(settings, client, broker, runtime)
        finally:
            await runtime.close()
            await broker.close()


async def make_endpoint(stack: Stack, tenant: uuid.UUID, url: str, types: list[str] | None = None) -> dict[str, Any]:
    """Register an ERP endpoint for ``tenant`` through the API; its answer (with the secret)."""
    r = await stack.client.post(
        "/v1/webhook-endpoints", json={"url": url, "event_types": types or ["*"]}, headers=stack.headers(tenant)
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def mandate_signed(tenant: uuid.UUID, version: int = 1, mandate_id: str | None = None, **fields: Any) -> Envelope:
    data = MandateSigned(
        mandate_id=mandate_id or str(uuid.uuid4()),
        mandate_number="MNDT-1",
        customer_number="C-1",
        status="active",
        scheme="CORE",
        iban="BE68539007547034",
        version=version,
        updated_at=datetime.now(UTC),
        **fields,
    )
    return new_event(data, tenant_id=tenant)


def collection_paid(tenant: uuid.UUID, version: int = 3) -> Envelope:
    data = CollectionPaid(
        collection_id=str(uuid.uuid4()),
        invoice_id=str(uuid.uuid4()),
        invoice_number="INV-2025-001",
        customer_number="C-1",
        amount_cents=12_345,
        status="paid",
        method="direct_debit",
        version=version,
        updated_at=datetime.now(UTC),
    )
    return new_event(data, tenant_id=tenant)


async def wait_until(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    from koppel_shared.testing.waiting import eventually

    await eventually(check, within=within)
