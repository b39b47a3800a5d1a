"""Fixtures for bookkeeping-svc's integration tests: the Twinfield sandbox on a real loopback
port (reset before every test), the service's API and worker on the real PostgreSQL and RabbitMQ,
and a publisher that sends events to the test exchange as collection-svc and mandate-svc would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bookkeeping_svc.bootstrap import definition
from bookkeeping_svc.settings import Settings
from koppel_shared.auth import issue_token
from koppel_shared.events import new_event
from koppel_shared.events.envelope import Envelope
from koppel_shared.events.registry import EventData
from koppel_shared.messaging.broker import Broker
from koppel_shared.migrations import migrate
from koppel_shared.testing.fixtures import AMQP_URL, settings_for_test
from koppel_shared.testing.service_checks import api_client, worker
from koppel_shared.testing.serving import Served
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
        token = issue_token(self.settings.jwt_secret.get_secret_value(), tenant_id, ["operator"])
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

    async def booking(self, tenant_id: uuid.UUID, status: str | None = None) -> dict[str, Any] | None:
        params = {"status": status} if status else {}
        reply = await self.api.get("/v1/bookings", params=params, headers=self.headers(tenant_id))
        assert reply.status_code == 200, reply.text
        items = reply.json()["items"]
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
