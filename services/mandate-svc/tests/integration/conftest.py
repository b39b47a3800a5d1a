"""Integration fixtures for mandate-svc: the real PostgreSQL and RabbitMQ, the API in-process, the
worker in-process, a tap queue on the test exchange, and a stand-in for sync-svc's internal invite
API served over real HTTP on a free port.

The stand-in speaks exactly sync-svc's contract (`POST /internal/v1/mandates/invite`, internal
tenant token; 200 `{mandate_number, sign_url}`, 422 problem `twikey_<ApiErrorCode>`, 503
`twikey_unavailable`). Like sync-svc, Twikey gives the mandate the number asked for, so the same
request always answers the same mandate number.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from koppel_shared.auth import TENANT_HEADER, TokenError, issue_token, verify_token
from koppel_shared.events import Envelope
from koppel_shared.messaging.broker import Broker
from koppel_shared.messaging.topology import declare_exchange
from koppel_shared.migrations import migrate
from koppel_shared.testing.fixtures import AMQP_URL, TEST_SIGNING_KEY, settings_for_test
from koppel_shared.testing.service_checks import api_client, worker
from koppel_shared.testing.serving import Served, free_port
from koppel_shared.testing.waiting import eventually
from mandate_svc.bootstrap import definition
from mandate_svc.settings import Settings


@dataclass
class FakeSync:
    url: str
    public_keys: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    numbers: dict[str, str] = field(default_factory=dict)
    # customer number → (status, code, detail, extra) to answer instead of inviting
    failures: dict[str, tuple[int, str, str, str | None]] = field(default_factory=dict)

    def calls_for(self, customer_number: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["body"]["customer"]["customer_number"] == customer_number]


def _fake_sync_app(fake: FakeSync) -> FastAPI:
    app = FastAPI()

    @app.post("/internal/v1/mandates/invite")
    async def invite(request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            principal = verify_token(fake.public_keys, token, acting_for=request.headers.get(TENANT_HEADER))
        except TokenError:
            return JSONResponse({"code": "invalid_token"}, status_code=401)
        if scheme != "Bearer" or not principal.has("internal"):
            return JSONResponse({"code": "insufficient_scope"}, status_code=403)
        body = await request.json()
        fake.calls.append({"tenant_id": str(principal.tenant_id), "body": body})
        failure = fake.failures.get(body["customer"]["customer_number"])
        if failure:
            status, code, detail, extra = failure
            problem = {"status": status, "code": code, "detail": detail}
            if extra:
                problem["extra"] = extra
            return JSONResponse(problem, status_code=status, media_type="application/problem+json")
        number = fake.numbers.setdefault(body["reference"], body["mandate_number"])
        return JSONResponse({"mandate_number": number, "sign_url": f"https://twikey.to/sandbox/{number}"})

    return app


@pytest.fixture(scope="module")
def settings(database_url: str, broker_prefix: str) -> Settings:
    # The fake's URL is patched in by the fake_sync fixture (it needs the public keys first).
    return settings_for_test(Settings, database_url, broker_prefix, sync_url="http://127.0.0.1:9", sync_attempts=2)


@pytest.fixture(scope="module")
def fake_sync(settings: Settings) -> Iterator[FakeSync]:
    port = free_port()
    fake = FakeSync(url=f"http://127.0.0.1:{port}", public_keys=settings.token_public_keys)
    with Served(_fake_sync_app(fake), port):
        settings.sync_url = fake.url
        yield fake


@dataclass
class Tap:
    """Every event published on the test exchange under the bound keys, in arrival order."""

    received: list[Envelope] = field(default_factory=list)

    def of(self, type_: str, **data: Any) -> list[Envelope]:
        return [e for e in self.received if e.type == type_ and all(e.data.get(k) == v for k, v in data.items())]

    async def wait_for(self, type_: str, within: float = 20, **data: Any) -> Envelope:
        async def seen() -> bool:
            return bool(self.of(type_, **data))

        await eventually(seen, within=within)
        return self.of(type_, **data)[-1]


@pytest.fixture(scope="module")
async def tap(settings: Settings, cleanup_exchange: None) -> AsyncIterator[Tap]:
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    exchange = await declare_exchange(channel, settings.exchange)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    for key in ("mandate.*", "sync.#", "twikey.#"):
        await queue.bind(exchange, routing_key=key)
    collected = Tap()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            collected.received.append(Envelope.from_json(message.body))

    await queue.consume(on_message)
    yield collected
    await connection.close()


@pytest.fixture(scope="module")
async def service(settings: Settings, fake_sync: FakeSync, tap: Tap) -> AsyncIterator[httpx.AsyncClient]:
    """Migrated database, the worker (outbox relay + consumers) and an API client."""
    await migrate(definition.migrations_dir, settings.database_url)
    async with worker(definition, settings), api_client(definition, settings) as client:
        yield client


@pytest.fixture(scope="module")
async def publisher(settings: Settings, service: httpx.AsyncClient) -> AsyncIterator[Callable[[Envelope], Any]]:
    """Publishes envelopes to the test exchange as sync-svc would."""
    broker = Broker(AMQP_URL, settings.exchange)
    await broker.connect()
    yield broker.publish
    await broker.close()


@dataclass(frozen=True)
class TenantCtx:
    id: str
    headers: dict[str, str]


def _tenant(settings: Settings) -> TenantCtx:
    tid = str(uuid.uuid4())
    token = issue_token(TEST_SIGNING_KEY, tid, ["erp"], issuer=settings.jwt_issuer)
    return TenantCtx(id=tid, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def tenant(settings: Settings) -> TenantCtx:
    return _tenant(settings)


@pytest.fixture
def other_tenant(settings: Settings) -> TenantCtx:
    return _tenant(settings)
