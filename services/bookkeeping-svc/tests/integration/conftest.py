"""Fixtures for bookkeeping-svc's integration tests: the Twinfield sandbox on a real loopback
port (reset before every test), the service's API and worker on the real PostgreSQL and RabbitMQ,
and a publisher that sends events to the test exchange as collection-svc and mandate-svc would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bookkeeping_svc.bootstrap import definition
from bookkeeping_svc.settings import Settings
from koppel_shared.auth import issue_token
from koppel_shared.events import new_event
from koppel_shared.events.collection import CollectionPaid
from koppel_shared.events.envelope import Envelope
from koppel_shared.events.registry import EventData
from koppel_shared.messaging.broker import Broker
from koppel_shared.migrations import migrate
from koppel_shared.testing.fixtures import AMQP_URL, TEST_SIGNING_KEY, settings_for_test
from koppel_shared.testing.service_checks import api_client, worker
from koppel_shared.testing.serving import Served
from koppel_shared.testing.waiting import eventually
from twinfield_sandbox import SandboxConfig, create_app
from twinfield_sandbox.testing import OFFICE, ORG


@dataclass
class Sandbox:
    app: Any
    base_url: str
    http: httpx.Client

    def reset(self) -> None:
        self.app.state.sandbox.config = SandboxConfig()
        self.app.state.sandbox.reset()

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.http.request(method, f"/_sandbox{path}", **kwargs)
        assert reply.status_code < 300, reply.text
        return reply.json()

    def memos(self) -> list[dict[str, Any]]:
        return list(self.control("GET", f"/offices/{OFFICE}/transactions", params={"daybook": "MEMO"}))

    def seed_invoice(self, customer: str, invoice_number: str, amount_cents: int) -> dict[str, Any]:
        if customer not in {c["code"] for c in self.control("GET", f"/offices/{OFFICE}/customers")}:
            self.seed_customer(customer, f"info-{customer}@example.nl")
        created = self.control(
            "POST",
            f"/offices/{OFFICE}/invoices",
            json={"invoices": [{"customer": customer, "invoice_number": invoice_number, "amount_cents": amount_cents}]},
        )["created"]
        return dict(created[0])

    def seed_customer(self, code: str, email: str, name: str = "Bakkerij De Korf") -> None:
        self.control(
            "POST", f"/offices/{OFFICE}/customers", json={"customers": [{"code": code, "name": name, "email": email}]}
        )

    def refresh_token(self) -> str:
        return str(
            self.control("POST", "/tokens", json={"client_id": "koppel-sandbox", "organisation": ORG})["refresh_token"]
        )


@pytest.fixture(scope="session")
def twinfield() -> Iterator[Sandbox]:
    app = create_app(SandboxConfig())
    with Served(app, lifespan="off") as served, httpx.Client(base_url=served.base, timeout=30) as http:
        yield Sandbox(app, served.base, http)


@pytest.fixture(autouse=True)
def fresh_sandbox(twinfield: Sandbox) -> None:
    twinfield.reset()


@pytest.fixture(scope="module")
def settings(database_url: str, broker_prefix: str, twinfield: Sandbox) -> Settings:
    return settings_for_test(
        Settings,
        database_url,
        broker_prefix,
        twinfield_login_url=twinfield.base_url,
        twinfield_redirect_uri="http://127.0.0.1:8104/v1/twinfield/oauth/callback",
        twinfield_timeout_seconds=2.0,
        booker_poll_seconds=0.1,
        transient_backoff_seconds=0.1,
        max_rate_limit_wait_seconds=10.0,
    )


@dataclass
class Service:
    settings: Settings
    api: httpx.AsyncClient
    broker: Broker

    def headers(self, tenant_id: uuid.UUID) -> dict[str, str]:
        token = issue_token(TEST_SIGNING_KEY, tenant_id, ["operator"])
        return {"Authorization": f"Bearer {token}"}

    async def publish(self, data: EventData, tenant_id: uuid.UUID, id: uuid.UUID | None = None) -> Envelope:
        envelope = new_event(data, tenant_id=tenant_id, id=id)
        await self.broker.publish(envelope)
        return envelope

    async def connect(self, tenant_id: uuid.UUID, twinfield: Sandbox, **connection: Any) -> None:
        body = {"office": OFFICE, **connection}
        reply = await self.api.put("/v1/twinfield/connection", json=body, headers=self.headers(tenant_id))
        assert reply.status_code == 200, reply.text
        reply = await self.api.post(
            "/v1/twinfield/connection/refresh-token",
            json={"refresh_token": twinfield.refresh_token()},
            headers=self.headers(tenant_id),
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "connected"

    async def bookings(self, tenant_id: uuid.UUID, status: str | None = None) -> dict[str, Any]:
        """The answer of ``GET /v1/bookings`` (one tab, or all)."""
        params = {"status": status} if status else {}
        reply = await self.api.get("/v1/bookings", params=params, headers=self.headers(tenant_id))
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    async def booking(self, tenant_id: uuid.UUID, status: str | None = None) -> dict[str, Any] | None:
        items = (await self.bookings(tenant_id, status))["items"]
        return items[0] if items else None


@pytest.fixture(scope="module")
async def service(settings: Settings, cleanup_exchange: None) -> AsyncIterator[Service]:
    await migrate(definition.migrations_dir, settings.database_url)
    broker = Broker(AMQP_URL, settings.exchange)
    await broker.connect()
    try:
        async with api_client(definition, settings) as api, worker(definition, settings):
            yield Service(settings, api, broker)
    finally:
        await broker.close()


def paid(invoice_number: str, amount_cents: int = 12100, tx: str | None = None, **extra: Any) -> CollectionPaid:
    """A ``collection.paid`` as collection-svc publishes it for a direct debit (override any field)."""
    now = datetime.now(UTC)
    tx = tx or f"TX{uuid.uuid4().hex[:10]}"
    values: dict[str, Any] = {
        "collection_id": str(uuid.uuid4()),
        "invoice_id": str(uuid.uuid4()),
        "invoice_number": invoice_number,
        "customer_number": "1001",
        "customer_email": "info@dekorf.nl",
        "amount_cents": amount_cents,
        "status": "paid",
        "method": "direct_debit",
        "payment_kind": "transaction",
        "twikey_id": tx,
        "twikey_transaction_id": tx,
        "paid_at": now,
        "version": 3,
        "updated_at": now,
    }
    values.update(extra)
    return CollectionPaid(**values)


async def wait_bookings(
    service: Service, tenant: uuid.UUID, status: str, count: int, within: float = 20
) -> list[dict[str, Any]]:
    """Wait until the tenant has exactly ``count`` bookings, all in ``status``."""
    last: list[Any] = [[]]

    async def check() -> bool:
        items = last[0] = (await service.bookings(tenant))["items"]
        return len(items) == count and all(i["status"] == status for i in items)

    try:
        await eventually(check, within=within, every=0.1)
    except AssertionError:
        raise AssertionError(f"never {count} bookings {status}: {last[0]}") from None
    return list(last[0])


async def wait_status(service: Service, tenant: uuid.UUID, status: str, within: float = 20) -> dict[str, Any]:
    found: dict[str, Any] = {}
    last: list[Any] = [None]

    async def check() -> bool:
        item = last[0] = await service.booking(tenant)
        if item and item["status"] == status:
            found.update(item)
            return True
        return False

    try:
        await eventually(check, within=within, every=0.1)
    except AssertionError:
        raise AssertionError(f"booking never became {status}: {last[0]}") from None
    return found


async def outbox_types(service: Service, booking_id: str) -> list[str]:
    engine = create_async_engine(service.settings.database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT type FROM outbox WHERE body LIKE :id ORDER BY seq"), {"id": f"%{booking_id}%"}
            )
            return [r[0] for r in rows]
    finally:
        await engine.dispose()
