"""Bad input on Twikey's webhook (sync-svc ``GET /webhooks/twikey/{tenant_id}``): replayed, forged
and cross-tenant signatures, signature spellings, malformed and oversized query strings.

Everything goes over real HTTP to sync-svc's API served by uvicorn, as in production, mostly
through a raw socket: no client library sends a 100 KB request line or raw bytes in a URL.
The webhook is only a nudge (the feed is the truth), so the effect that matters downstream is the
events a feed drain publishes: a replayed webhook must never publish a feed message twice.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes

import aio_pika
import httpx
import pytest
import sqlalchemy as sa

from koppel_shared.events import new_event
from koppel_shared.events.system import Ping
from koppel_shared.events.twikey import twikey_event_uuid
from koppel_shared.messaging.topology import declare_exchange
from koppel_shared.migrations import migrate
from koppel_shared.service import Runtime, build_api
from koppel_shared.testing.fixtures import AMQP_URL
from koppel_shared.testing.service_checks import worker
from koppel_shared.testing.serving import Served, free_port
from koppel_shared.testing.waiting import eventually
from sync_svc.bootstrap import definition
from sync_svc.domain.signature import sign
from sync_svc.settings import Settings
from sync_svc.testing import sync_settings_for_test
from twikey_sandbox import create_app
from twikey_sandbox.testing import koppel_connection

from .support import PROBLEM, bearer, raw_get

pytestmark = pytest.mark.integration

REPLAYS = 25


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sandbox() -> Iterator[Served]:
    with Served(create_app()) as served:
        yield served


@pytest.fixture(scope="module")
def api_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
async def settings(database_url: str, broker_prefix: str, cleanup_exchange: None, api_port: int) -> Settings:
    s = sync_settings_for_test(database_url, broker_prefix, api_port)
    await migrate(definition.migrations_dir, s.database_url)
    return s


@pytest.fixture(scope="module")
def sync_api(settings: Settings, api_port: int) -> Iterator[Served]:
    with Served(build_api(definition, settings), api_port, lifespan="on") as served:
        yield served


@pytest.fixture(scope="module")
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await Runtime.open(definition.name, settings, connect_broker=False)
    yield rt
    await rt.close()


@dataclass
class Tenant:
    tenant_id: uuid.UUID
    api_key: str
    operator: dict[str, str]

    def target(self, query: bytes | str) -> bytes:
        raw = query.encode("latin-1") if isinstance(query, str) else query
        return f"/webhooks/twikey/{self.tenant_id}".encode() + (b"?" + raw if raw else b"")


async def connect_tenant(sandbox: Served, sync_api: Served, settings: Settings, *, webhooks: bool) -> Tenant:
    """A tenant connected to its own sandbox creditor; with ``webhooks`` the sandbox sends it
    Twikey's webhooks itself."""
    tenant_id = uuid.uuid4()
    body = {"webhook_url": f"{sync_api.base}/webhooks/twikey/{tenant_id}"} if webhooks else {}
    operator = bearer(settings, tenant_id, ["operator", "internal"])
    async with httpx.AsyncClient(timeout=30) as http:
        made = (await http.post(f"{sandbox.base}/_sandbox/creditors", json=body)).json()
        r = await http.put(
            f"{sync_api.base}/v1/twikey/connection",
            headers=operator,
            json=koppel_connection(made, sandbox.base),
        )
        assert r.status_code == 200, r.text
    return Tenant(tenant_id, made["api_key"], operator)


@pytest.fixture(scope="module")
async def tenant(sandbox: Served, sync_api: Served, settings: Settings) -> Tenant:
    return await connect_tenant(sandbox, sync_api, settings, webhooks=False)


async def stored(runtime: Runtime, tenant_id: uuid.UUID) -> list[Any]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT id, query, type, event, drained_at FROM received_webhooks WHERE tenant_id = :t ORDER BY id"
            ),
            {"t": tenant_id},
        )
        return list(rows)


def signed(api_key: str, query: str) -> dict[bytes, bytes]:
    """Signed as Twikey's own receivers verify: over the decoded query's bytes (see
    ``sync_svc.domain.signature``; bytes, so a query that is not UTF-8 is still validly signed)."""
    return {b"X-Signature": sign(api_key, unquote_to_bytes(query)).encode()}


def assert_problem(response: Any, status: int, code: str) -> None:
    assert (response.status, response.content_type) == (status, PROBLEM), (response.status, response.body[:300])
    assert response.json()["code"] == code


# -------------------------------------------------------------------------------------- replays
@dataclass
class Tap:
    """Every twikey.* event and system.ping published on the test exchange."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    def of(self, type_: str, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == type_ and m["tenant_id"] == str(tenant_id)]

    async def barrier(self, runtime: Runtime) -> None:
        """Emit a ping through sync-svc's outbox and wait for it: the relay publishes in outbox
        order, so every event a drain wrote before it has reached the tap too."""
        ping = new_event(Ping(sender="badinput", note="barrier"), tenant_id=None)
        async with runtime.uow() as uow:
            await uow.emit(ping)
            await uow.commit()

        async def seen() -> bool:
            return any(m["id"] == str(ping.id) for m in self.messages)

        await eventually(seen, within=20)


@pytest.fixture
async def tap(settings: Settings) -> AsyncIterator[Tap]:
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    exchange = await declare_exchange(channel, settings.exchange)
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    for key in ("twikey.#", "system.ping"):
        await queue.bind(exchange, routing_key=key)
    collected = Tap()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            collected.messages.append(json.loads(message.body))

    await queue.consume(on_message)
    yield collected
    await connection.close()


async def test_a_replayed_webhook_never_publishes_a_feed_message_twice(
    sandbox: Served, sync_api: Served, settings: Settings, runtime: Runtime, tap: Tap
) -> None:
    t = await connect_tenant(sandbox, sync_api, settings, webhooks=True)
    async with httpx.AsyncClient(timeout=30) as http:
        invited = await http.post(
            f"{sync_api.base}/internal/v1/mandates/invite",
            headers=t.operator,
            json={"reference": str(uuid.uuid4()), "scheme": "CORE", "delivery": "link", "name": "An Peeters"},
        )
        assert invited.status_code == 200, invited.text
        number = invited.json()["mandate_number"]
        r = await http.post(
            f"{sandbox.base}/_sandbox/mandates/{number}/sign", json={"iban": "BE68539007547034", "bic": "GKCCBEBB"}
        )
        assert r.status_code == 200, r.text

    # The sandbox's own Sign webhook, captured as sync-svc stored it: replaying it is a replay
    # of exactly what Twikey sent, with Twikey's valid signature.
    async def sign_webhook_stored() -> bool:
        return any(row.event == "Sign" for row in await stored(runtime, t.tenant_id))

    await eventually(sign_webhook_stored, within=20)
    query = next(row.query for row in await stored(runtime, t.tenant_id) if row.event == "Sign")

    async def replay() -> None:
        answers = await asyncio.gather(
            *(raw_get(sync_api.port, t.target(query), signed(t.api_key, query)) for _ in range(REPLAYS))
        )
        assert {a.status for a in answers} == {204}

    async def all_drained() -> bool:
        rows = await stored(runtime, t.tenant_id)
        return all(row.drained_at is not None for row in rows)

    await replay()  # before the worker runs: a backlog of replays
    async with worker(definition, settings):
        await eventually(all_drained, within=30)
        await tap.barrier(runtime)
        first = tap.of("twikey.mandate.changed", t.tenant_id)

        await replay()  # and again once the feed has been drained
        assert len(await stored(runtime, t.tenant_id)) >= 2 + 2 * REPLAYS
        await eventually(all_drained, within=30)
        await tap.barrier(runtime)
        after = tap.of("twikey.mandate.changed", t.tenant_id)

    async with httpx.AsyncClient(timeout=30) as http:
        feeds = (await http.get(f"{sandbox.base}/_sandbox/creditors/{t.api_key}/feeds")).json()
    in_feed = feeds["mandate"]["events"]
    assert in_feed >= 1 and feeds["mandate"]["pending"] == 0
    # One event per feed message, each with the id derived from Twikey's identity of it; the
    # 2 × 25 replays added none.
    assert len(first) == in_feed, [e["data"]["twikey_event_id"] for e in first]
    assert after == first
    assert len({e["id"] for e in after}) == len(after)
    assert all(e["id"] == str(twikey_event_uuid(t.tenant_id, e["data"]["twikey_event_id"])) for e in after)
    assert [e["data"]["change"] for e in after if e["data"]["mandate_number"] == number] == ["signed"]
    async with runtime.engine.connect() as conn:
        in_outbox = await conn.scalar(
            sa.text("SELECT count(*) FROM outbox WHERE tenant_id = :t AND type = 'twikey.mandate.changed'"),
            {"t": t.tenant_id},
        )
    assert in_outbox == in_feed


# ---------------------------------------------------------------------------------- signatures
async def test_a_signature_valid_for_one_tenant_is_refused_at_another_tenants_url(
    sandbox: Served, sync_api: Served, settings: Settings, runtime: Runtime
) -> None:
    tenant = await connect_tenant(sandbox, sync_api, settings, webhooks=False)
    other = await connect_tenant(sandbox, sync_api, settings, webhooks=False)
    query = "type=contract&mandateNumber=SBX1M00000001&event=Sign"
    # Signed with the first tenant's key, sent to the other tenant's URL.
    r = await raw_get(sync_api.port, other.target(query), signed(tenant.api_key, query))
    assert_problem(r, 401, "invalid_signature")
    assert await stored(runtime, other.tenant_id) == []
    assert await stored(runtime, tenant.tenant_id) == []
    # The same request at its own tenant's URL is accepted: the refusal was about the tenant.
    ok = await raw_get(sync_api.port, tenant.target(query), signed(tenant.api_key, query))
    assert ok.status == 204
    assert [row.query for row in await stored(runtime, tenant.tenant_id)] == [query]
    assert await stored(runtime, other.tenant_id) == []


QUERY = "type=contract&mandateNumber=SBX1M%2042&event=Sign"  # decoded: "…SBX1M 42…"


def _good(key: str) -> str:
    return sign(key, unquote(QUERY))


# ``sync_svc.domain.signature``: Twikey sends uppercase hex HMAC-SHA256 keyed with the API key;
# we compare case-insensitively (hex), accept the decoded or the raw query string (Twikey's SDKs
# differ), and HTTP strips the header value's surrounding whitespace. Anything else is refused.
ACCEPTED = {
    "uppercase over the decoded query": _good,
    "lowercase hex": lambda key: _good(key).lower(),
    "over the raw query string": lambda key: sign(key, QUERY),
    "surrounded by spaces and tabs": lambda key: f" \t {_good(key)} \t ",
}
REFUSED = {
    "empty": lambda key: "",
    "blank": lambda key: "   ",
    "space inside": lambda key: _good(key)[:32] + " " + _good(key)[32:],
    "sha256= prefix": lambda key: "sha256=" + _good(key),
    "0x prefix": lambda key: "0x" + _good(key),
    "base64 of the same digest": lambda key: __import__("base64").b64encode(bytes.fromhex(_good(key))).decode(),
    "truncated": lambda key: _good(key)[:-1],
    "one digit changed": lambda key: _good(key)[:-1] + ("0" if _good(key)[-1] != "0" else "1"),
    "of another query": lambda key: sign(key, "type=contract&mandateNumber=SBX1M 43&event=Sign"),
    "with the API key as signature": lambda key: key,
}


@pytest.mark.parametrize("variant", list(ACCEPTED))
async def test_signature_spellings_that_are_documented_as_equivalent_are_accepted(
    variant: str, sync_api: Served, runtime: Runtime, tenant: Tenant
) -> None:
    before = len(await stored(runtime, tenant.tenant_id))
    r = await raw_get(sync_api.port, tenant.target(QUERY), {b"X-Signature": ACCEPTED[variant](tenant.api_key).encode()})
    assert r.status == 204, r.body
    rows = await stored(runtime, tenant.tenant_id)
    assert len(rows) == before + 1 and rows[-1].query == QUERY


@pytest.mark.parametrize("variant", list(REFUSED))
async def test_other_signature_spellings_are_refused_and_store_nothing(
    variant: str, sync_api: Served, runtime: Runtime, tenant: Tenant
) -> None:
    before = len(await stored(runtime, tenant.tenant_id))
    r = await raw_get(sync_api.port, tenant.target(QUERY), {b"X-Signature": REFUSED[variant](tenant.api_key).encode()})
    assert_problem(r, 401, "invalid_signature")
    assert len(await stored(runtime, tenant.tenant_id)) == before


# ------------------------------------------------------------------------ malformed query strings
@dataclass(frozen=True)
class Malformed:
    query: str
    status: int
    code: str


MALFORMED = {
    "empty": Malformed("", 400, "malformed_webhook"),
    "only separators": Malformed("&&&", 400, "malformed_webhook"),
    "empty type": Malformed("type=&event=Sign", 400, "malformed_webhook"),
    "a field without =": Malformed("type=payment&%ZZ", 400, "malformed_webhook"),
    "NUL, percent-encoded": Malformed("type=payment&msg=a%00b", 422, "invalid_characters"),
    "NUL in the type": Malformed("type=%00", 422, "invalid_characters"),
    "UTF-8-encoded lone surrogate": Malformed("type=payment&msg=%ED%A0%80", 422, "invalid_characters"),
    # Strict parsing: an invalid escape, bytes that are not UTF-8 or a repeated key is refused.
    "bad percent-encoding": Malformed("type=payment&msg=%ZZ%4", 400, "malformed_webhook"),
    "bad percent-encoding in the type": Malformed("type=pay%ZZment", 400, "malformed_webhook"),
    "repeated keys": Malformed("type=payment&type=contract", 400, "malformed_webhook"),
    "repeated mandateNumber": Malformed(
        "type=contract&mandateNumber=A1&mandateNumber=B2&event=Sign", 400, "malformed_webhook"
    ),
    "not UTF-8, percent-encoded": Malformed("type=payment&msg=%FF%FE", 400, "malformed_webhook"),
    "not UTF-8 in the type": Malformed("type=%C3%28", 400, "malformed_webhook"),
}
GAPS: dict[str, str] = {}  # every malformed query is refused; a new gap goes here with its reason


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_a_malformed_query_without_a_valid_signature_is_refused_and_stores_nothing(
    case: str, sync_api: Served, runtime: Runtime, tenant: Tenant
) -> None:
    m = MALFORMED[case]
    before = len(await stored(runtime, tenant.tenant_id))
    for headers in ({}, signed("not-the-key", m.query)):
        r = await raw_get(sync_api.port, tenant.target(m.query), headers)
        assert 400 <= r.status < 500 and r.content_type == PROBLEM, (r.status, r.body[:300])
        # Characters PostgreSQL cannot store are refused before anything else; all else is
        # refused for its signature before it is parsed.
        assert r.json()["code"] == ("invalid_characters" if m.code == "invalid_characters" else "invalid_signature")
    assert len(await stored(runtime, tenant.tenant_id)) == before


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=GAPS[name])) if name in GAPS else name
        for name in MALFORMED
    ],
)
async def test_a_malformed_query_with_a_valid_signature_gets_a_problem_and_stores_nothing(
    case: str, sync_api: Served, runtime: Runtime, tenant: Tenant
) -> None:
    m = MALFORMED[case]
    before = len(await stored(runtime, tenant.tenant_id))
    r = await raw_get(sync_api.port, tenant.target(m.query), signed(tenant.api_key, m.query))
    assert len(await stored(runtime, tenant.tenant_id)) == before, "a malformed webhook was stored"
    assert_problem(r, m.status, m.code)


# Not HTTP at all: RFC 9112 allows neither raw bytes above 0x7E nor NUL nor spaces in a request
# target. uvicorn's parser refuses these before the app sees them (400 text/plain, which is all
# an HTTP server can say about a request it could not parse).
NOT_HTTP = {
    "raw 0xFF byte": b"type=payment&msg=\xff",
    "raw NUL byte": b"type=payment&msg=a\x00b",
    "raw space": b"type=payment&msg=a b",
    "raw CR": b"type=payment&msg=a\rb",
}


@pytest.mark.parametrize("case", list(NOT_HTTP))
async def test_raw_bytes_in_the_query_are_refused_before_the_app_and_store_nothing(
    case: str, sync_api: Served, runtime: Runtime, tenant: Tenant
) -> None:
    raw = NOT_HTTP[case]
    before = len(await stored(runtime, tenant.tenant_id))
    r = await raw_get(
        sync_api.port, tenant.target(raw), {b"X-Signature": sign(tenant.api_key, raw.decode("latin-1")).encode()}
    )
    assert r.status == 400, (r.status, r.body[:300])
    assert len(await stored(runtime, tenant.tenant_id)) == before


# ---------------------------------------------------------------------------- oversized queries
def _long_query(size: int) -> str:
    head = "type=contract&mandateNumber=SBX1M00000001&event=Sign&msg="
    return head + quote("x" * (size - len(head)))


async def test_a_100_kb_query_string_is_refused_and_stores_nothing(
    sync_api: Served, runtime: Runtime, tenant: Tenant
) -> None:
    query = _long_query(100_000)
    before = len(await stored(runtime, tenant.tenant_id))
    for headers in (signed(tenant.api_key, query), signed("not-the-key", query), {}):
        r = await raw_get(sync_api.port, tenant.target(query), headers)
        # Refused by uvicorn's HTTP parser (its request-head limit is 80 KB), before the app:
        # 400 text/plain "Invalid HTTP request received.", not a problem document.
        assert r.status == 400, (r.status, r.body[:300])
    assert len(await stored(runtime, tenant.tenant_id)) == before


async def test_an_oversized_query_string_without_a_valid_signature_gets_a_problem(
    sync_api: Served, runtime: Runtime, tenant: Tenant
) -> None:
    query = _long_query(60_000)  # under the HTTP server's limit: the app answers
    before = len(await stored(runtime, tenant.tenant_id))
    r = await raw_get(sync_api.port, tenant.target(query), signed("not-the-key", query))
    assert_problem(r, 401, "invalid_signature")
    assert len(await stored(runtime, tenant.tenant_id)) == before


async def test_an_oversized_query_string_with_a_valid_signature_gets_a_problem_and_stores_nothing(
    sync_api: Served, runtime: Runtime, tenant: Tenant
) -> None:
    query = _long_query(60_000)  # Twikey's own webhooks are a few hundred bytes
    before = len(await stored(runtime, tenant.tenant_id))
    r = await raw_get(sync_api.port, tenant.target(query), signed(tenant.api_key, query))
    assert len(await stored(runtime, tenant.tenant_id)) == before, "a 60 KB webhook was stored"
    assert 400 <= r.status < 500 and r.content_type == PROBLEM, (r.status, r.body[:300])
    assert r.json()["code"]
