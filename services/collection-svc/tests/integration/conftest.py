"""Fixtures for collection-svc's integration tests on the real PostgreSQL and RabbitMQ: a clock
the test moves, the service's API and worker, a tap queue on the test exchange that records what
the service publishes, and a publisher playing mandate-svc and sync-svc."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aio_pika
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from collection_svc.bootstrap import make_definition
from collection_svc.settings import Settings
from koppel_shared.auth import issue_token
from koppel_shared.events import Envelope, new_event
from koppel_shared.events.mandate import MandateSigned
from koppel_shared.messaging.broker import Broker
from koppel_shared.messaging.topology import declare_exchange
from koppel_shared.migrations import migrate
from koppel_shared.service import ServiceDefinition
from koppel_shared.testing.fixtures import AMQP_URL, TEST_SIGNING_KEY, settings_for_test
from koppel_shared.testing.service_checks import api_client, worker
from koppel_shared.testing.waiting import eventually


class FakeClock:
    """What the service calls "now"; tests move it instead of sleeping."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set_date(self, day: date, hour: int = 9) -> None:
        self.now = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)

    def advance(self, days: int) -> None:
        self.now += timedelta(days=days)


@dataclass
class Tap:
    """A queue bound to what collection-svc publishes (collection.*, sync.*)."""

    messages: list[Envelope] = field(default_factory=list)

    def of_type(self, type_: str, tenant: uuid.UUID | None = None, **data: Any) -> list[Envelope]:
        return [
            m
            for m in self.messages
            if m.type == type_
            and (tenant is None or m.tenant_id == tenant)
            and all(m.data.get(k) == v for k, v in data.items())
        ]

    def collect_items(self, tenant_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
        return [
            item
            for m in self.of_type("sync.collect_requested")
            if tenant_id is None or m.tenant_id == tenant_id
            for item in m.data["items"]
        ]

    async def wait_for(
        self, type_: str, count: int = 1, within: float = 15, tenant: uuid.UUID | None = None, **data: Any
    ) -> list[Envelope]:
        async def seen() -> bool:
            return len(self.of_type(type_, tenant, **data)) >= count

        await eventually(seen, within=within)
        return self.of_type(type_, tenant, **data)


@dataclass
class Harness:
    settings: Settings
    definition: ServiceDefinition
    clock: FakeClock
    client: httpx.AsyncClient
    tap: Tap
    broker: Broker
    engine: Any

    @staticmethod
    def body(**overrides: Any) -> dict[str, Any]:
        return invoice_body(**overrides)

    def headers(self, tenant_id: uuid.UUID) -> dict[str, str]:
        token = issue_token(TEST_SIGNING_KEY, tenant_id, ["erp"])
        return {"Authorization": f"Bearer {token}"}

    async def publish(self, envelope: Envelope) -> None:
        await self.broker.publish(envelope)

    async def handled(self, envelope: Envelope, within: float = 15) -> None:
        """Wait until the worker's inbox recorded the envelope (its effect committed with it)."""

        async def done() -> bool:
            async with self.engine.connect() as conn:
                row = await conn.execute(sa.text("SELECT 1 FROM inbox WHERE event_id = :id"), {"id": envelope.id})
                # Twikey transaction messages are staged, then applied in bulk: wait for that too
                staged = await conn.execute(sa.text("SELECT count(*) FROM twikey_updates WHERE failed_at IS NULL"))
                return row.first() is not None and staged.scalar_one() == 0

        await eventually(done, within=within)

    async def sign_mandate(
        self,
        tenant_id: uuid.UUID,
        customer_number: str,
        mandate_number: str,
        max_amount_cents: int | None = None,
        version: int = 1,
        status: str = "active",
        event: type = MandateSigned,
        mandate_id: str | None = None,
    ) -> Envelope:
        envelope = new_event(
            event(
                mandate_id=mandate_id or f"m-{mandate_number}",
                mandate_number=mandate_number,
                customer_number=customer_number,
                status=status,
                scheme="CORE",
                max_amount_cents=max_amount_cents,
                version=version,
                updated_at=self.clock(),
            ),
            tenant_id=tenant_id,
        )
        await self.publish(envelope)
        await self.handled(envelope)
        return envelope

    async def post_invoice(self, tenant_id: uuid.UUID, **overrides: Any) -> dict[str, Any]:
        body = invoice_body(**overrides)
        response = await self.client.post("/v1/invoices", json=body, headers=self.headers(tenant_id))
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    async def invoice(self, tenant_id: uuid.UUID, invoice_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/invoices/{invoice_id}", headers=self.headers(tenant_id))
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def invoice_eventually(
        self, tenant_id: uuid.UUID, invoice_id: str, check: Callable[[dict[str, Any]], bool], within: float = 15
    ) -> dict[str, Any]:
        latest: dict[str, Any] = {}

        async def ok() -> bool:
            latest.update(await self.invoice(tenant_id, invoice_id))
            return check(latest)

        await eventually(ok, within=within)
        return latest


def invoice_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "invoice_number": f"INV-{uuid.uuid4().hex[:8]}",
        "customer_number": "C-1",
        "customer_name": "An Peeters",
        "customer_email": "an@example.be",
        "amount_cents": 4999,
        "currency": "EUR",
        "invoice_date": "2026-02-01",
        "due_date": "2026-02-15",
        "description": "Invoice",
    }
    body.update(overrides)
    return body


@pytest.fixture(scope="module")
async def harness(database_url: str, broker_prefix: str, cleanup_exchange: None) -> AsyncIterator[Harness]:
    async with running_harness(database_url, broker_prefix, scheduler_interval_seconds=0.1) as running:
        yield running


@contextlib.asynccontextmanager
async def running_harness(database_url: str, broker_prefix: str, **overrides: Any) -> AsyncIterator[Harness]:
    """API, worker (scheduler on a fake clock) and a tap on the exchange, with these settings."""
    clock = FakeClock(datetime(2026, 2, 1, 9, tzinfo=UTC))
    definition = make_definition(clock)
    settings = settings_for_test(Settings, database_url, broker_prefix, **overrides)
    await migrate(definition.migrations_dir, settings.database_url)

    tap = Tap()
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    exchange = await declare_exchange(channel, settings.exchange)
    queue = await channel.declare_queue(f"{broker_prefix}tap", exclusive=True)
    for key in ("collection.#", "sync.#"):
        await queue.bind(exchange, routing_key=key)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        tap.messages.append(Envelope.from_json(message.body))
        await message.ack()

    await queue.consume(on_message)
    broker = Broker(AMQP_URL, settings.exchange)
    await broker.connect()
    engine = create_async_engine(settings.database_url)
    async with api_client(definition, settings) as client, worker(definition, settings):
        yield Harness(settings, definition, clock, client, tap, broker, engine)
    await engine.dispose()
    await broker.close()
    await connection.close()
    await asyncio.sleep(0)
