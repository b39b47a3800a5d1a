"""Through the real sync-svc worker and the Twikey sandbox: an invoice falls due, collection-svc
sends the bulk command, sync-svc creates the transaction at the sandbox and answers
``twikey.transaction.created``; the sandbox's bank pays it, then reverses it; its webhooks reach
sync-svc over HTTP, sync-svc drains the transaction feed and publishes ``twikey.transaction.changed``;
collection-svc moves the collection to paid, then reversed. Ends with a feed reset that replays
everything: still one transaction at Twikey, one ``collection.paid``. And an invoice Twikey refuses
(above the debtor's maximum at Twikey), corrected under its own number and collected, its
accented description transliterated into SEPA text that Twikey takes.

mandate-svc is played by publishing ``mandate.signed`` for a mandate seeded (signed) in the
sandbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
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
from koppel_shared.migrations import drop_database, ensure_database, migrate
from koppel_shared.service import build_api
from koppel_shared.testing.fixtures import AMQP_URL, PG_BASE, TEST_SIGNING_KEY, settings_for_test, unique_name
from koppel_shared.testing.service_checks import api_client, worker
from koppel_shared.testing.serving import Served, free_port
from koppel_shared.testing.waiting import eventually

sync_bootstrap = pytest.importorskip("sync_svc.bootstrap")
sync_testing = pytest.importorskip("sync_svc.testing")
twikey_sandbox = pytest.importorskip("twikey_sandbox")
twikey_testing = pytest.importorskip("twikey_sandbox.testing")

pytestmark = pytest.mark.integration


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, days: int) -> None:
        self.now += timedelta(days=days)


@pytest.fixture(scope="module")
async def sync_database_url() -> AsyncIterator[str]:
    url = f"{PG_BASE}/{unique_name('db')}"
    await ensure_database(url)
    yield url
    await drop_database(url)


@dataclass
class Stack:
    """collection-svc's API and worker, sync-svc's worker and API, the sandbox with a creditor and
    one signed mandate that collection-svc knows of (``mandate.signed`` published for it)."""

    clock: FakeClock
    client: httpx.AsyncClient
    erp: dict[str, str]
    control: httpx.AsyncClient
    sync_http: httpx.AsyncClient
    api_key: str
    mandate_number: str
    seen: list[Envelope]
    engine: Any


@asynccontextmanager
async def running_stack(database_url: str, sync_database_url: str, broker_prefix: str) -> AsyncIterator[Stack]:
    clock = FakeClock(datetime.now(UTC))
    definition = make_definition(clock)
    engine = create_async_engine(database_url)
    settings = settings_for_test(Settings, database_url, broker_prefix, scheduler_interval_seconds=0.1)
    sync_definition = sync_bootstrap.definition
    sync_port = free_port()
    sync_settings = sync_testing.sync_settings_for_test(
        sync_database_url, broker_prefix, sync_port, twikey_timeout_seconds=5.0
    )
    await migrate(definition.migrations_dir, settings.database_url)
    await migrate(sync_definition.migrations_dir, sync_settings.database_url)
    tenant = uuid.uuid4()
    secret = TEST_SIGNING_KEY
    erp = {"Authorization": f"Bearer {issue_token(secret, tenant, ['erp'], ttl=timedelta(hours=1))}"}
    operator = {"Authorization": f"Bearer {issue_token(secret, tenant, ['operator'], ttl=timedelta(hours=1))}"}

    seen: list[Envelope] = []
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    exchange = await declare_exchange(channel, settings.exchange)
    tap = await channel.declare_queue(f"{broker_prefix}e2e-tap-{tenant.hex[:8]}", exclusive=True)
    await tap.bind(exchange, routing_key="collection.#")

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        seen.append(Envelope.from_json(message.body))
        await message.ack()

    await tap.consume(on_message)
    broker = Broker(AMQP_URL, settings.exchange)
    await broker.connect()

    with (
        Served(twikey_sandbox.create_app(fault_seed=5)) as sandbox,
        Served(build_api(sync_definition, sync_settings), sync_port) as sync_api,
    ):
        async with (
            worker(sync_definition, sync_settings),
            worker(definition, settings),
            api_client(definition, settings) as client,
            httpx.AsyncClient(base_url=sync_api.base, headers=operator, timeout=30) as sync_http,
            httpx.AsyncClient(base_url=f"{sandbox.base}/_sandbox", timeout=60) as control,
        ):
            made = (
                await control.post("/creditors", json={"webhook_url": f"{sync_api.base}/webhooks/twikey/{tenant}"})
            ).json()
            api_key = made["api_key"]
            r = await sync_http.put("/v1/twikey/connection", json=twikey_testing.koppel_connection(made, sandbox.base))
            assert r.status_code == 200, r.text
            seeded = (await control.post("/seed", json={"api_key": api_key, "mandates": 1})).json()
            mandate_number = seeded["first_mandate"]
            signed = new_event(
                MandateSigned(
                    mandate_id=str(uuid.uuid4()),
                    mandate_number=mandate_number,
                    customer_number="C-E2E",
                    status="active",
                    scheme="CORE",
                    version=1,
                    updated_at=clock(),
                ),
                tenant_id=tenant,
            )
            await broker.publish(signed)
            await eventually(lambda: _projected(engine, mandate_number), within=15)
            yield Stack(clock, client, erp, control, sync_http, api_key, mandate_number, seen, engine)

    await broker.close()
    await connection.close()
    await engine.dispose()


def invoice_body(number: str, today: date, **overrides: Any) -> dict[str, Any]:
    body = {
        "invoice_number": number,
        "customer_number": "C-E2E",
        "customer_name": "An Peeters",
        "customer_email": "an@example.be",
        "amount_cents": 4999,
        "currency": "EUR",
        "invoice_date": today.isoformat(),
        "due_date": (today + timedelta(days=10)).isoformat(),
        "description": f"Invoice {number}",
    }
    return {**body, **overrides}


async def test_invoice_collected_through_sync_svc_and_the_sandbox_paid_reversed_and_replayed(
    database_url: str, sync_database_url: str, broker_prefix: str, cleanup_exchange: None
) -> None:
    async with running_stack(database_url, sync_database_url, broker_prefix) as stack:
        clock, client, erp, control, sync_http, seen = (
            stack.clock,
            stack.client,
            stack.erp,
            stack.control,
            stack.sync_http,
            stack.seen,
        )
        today = clock().date()
        posted = await client.post("/v1/invoices", json=invoice_body("E2E-1", today), headers=erp)
        assert posted.status_code == 201, posted.text
        invoice = posted.json()
        assert invoice["status"] == "scheduled", invoice
        assert invoice["collection"]["collect_on"] == (today + timedelta(days=7)).isoformat()

        # the day comes: collection-svc → sync.collect_requested → sync-svc → sandbox → created
        clock.advance(days=7)
        submitted = await _invoice_when(
            client, erp, invoice["id"], lambda i: i["collection"]["reason_code"] == "accepted"
        )
        tx_id = submitted["collection"]["twikey_transaction_id"]
        at_twikey = (await control.get(f"/transactions/{tx_id}")).json()
        assert at_twikey["ref"] == invoice["collection"]["collection_id"], at_twikey
        assert [e.type for e in seen if e.type == "collection.submitted"] == ["collection.submitted"]

        # the bank pays; the webhook makes sync-svc drain the feed
        assert (await control.post(f"/transactions/{tx_id}/paid")).status_code == 200
        paid = await _invoice_when(client, erp, invoice["id"], lambda i: i["status"] == "paid")
        assert paid["collection"]["paid_at"]

        # then the debtor has it refunded (MD06): reversed, never retried
        r = await control.post(f"/transactions/{tx_id}/reverse", json={"code": "MD06"})
        assert r.status_code == 200, r.text
        reversed_ = await _invoice_when(client, erp, invoice["id"], lambda i: i["status"] == "reversed")
        assert reversed_["collection"]["r_code"] == "MD06"

        # a feed reset replays everything (same envelope ids from sync-svc): nothing new happens
        version = reversed_["collection"]["version"]

        async def transaction_cursor() -> Any:
            feeds = (await sync_http.get("/v1/twikey/feeds")).json()["feeds"]
            return next(f["cursor"] for f in feeds if f["feed"] == "transaction")

        before = await transaction_cursor()
        reset = await sync_http.post("/v1/twikey/feeds/reset", json={"feed": "transaction"})
        assert reset.status_code == 200, reset.text

        async def replayed() -> bool:
            return await transaction_cursor() == before

        await eventually(replayed, within=30, every=0.2)
        await eventually(lambda: _nothing_staged(stack.engine), within=15)
        total = (await control.get("/transactions", params={"api_key": stack.api_key})).json()["total"]
        assert total == 1
        paid_events = [e for e in seen if e.type == "collection.paid"]
        assert len(paid_events) == 1
        after = (await client.get(f"/v1/invoices/{invoice['id']}", headers=erp)).json()
        assert after["collection"]["version"] == version and len(after["attempts"]) == 1


async def test_an_invoice_twikey_refuses_is_corrected_and_collected_under_its_number_in_sepa_text(
    database_url: str, sync_database_url: str, broker_prefix: str, cleanup_exchange: None
) -> None:
    async with running_stack(database_url, sync_database_url, broker_prefix) as stack:
        client, erp, control = stack.client, stack.erp, stack.control
        today = stack.clock().date()
        # the debtor allows at most €10.00 per collection at Twikey; Koppel has not heard of it
        r = await control.post(
            f"/mandates/{stack.mandate_number}/max-amount",
            json={"max_amount": "10.00"},
            params={"api_key": stack.api_key},
        )
        assert r.status_code == 200, r.text
        # the tenant opted in to transliteration: the accented text is made SEPA text
        r = await client.put("/v1/collection-policy", json={"transliterate_text": True}, headers=erp)
        assert r.status_code == 200, r.text
        body = invoice_body("E2E-2", today, due_date=today.isoformat(), description="Zoë Ünal & Söhne <BV> — «€»")
        posted = await client.post("/v1/invoices", json=body, headers=erp)
        assert posted.status_code == 201, posted.text
        invoice = posted.json()
        assert invoice["description"] == "Zoe Unal Sohne BV - EUR"

        refused = await _invoice_when(client, erp, invoice["id"], lambda i: i["status"] == "failed")
        assert refused["collection"]["reason_code"] == "err_billing_overdrawn", refused

        fixed = await client.patch(f"/v1/invoices/{invoice['id']}", json={"amount_cents": 999}, headers=erp)
        assert fixed.status_code == 200, fixed.text
        assert fixed.json()["collection"]["attempt"] == 2

        accepted = await _invoice_when(
            client, erp, invoice["id"], lambda i: i["collection"]["reason_code"] == "accepted"
        )
        assert accepted["invoice_number"] == "E2E-2" and accepted["id"] == invoice["id"]
        at_twikey = (await control.get(f"/transactions/{accepted['collection']['twikey_transaction_id']}")).json()
        assert at_twikey["msg"] == "Zoe Unal Sohne BV - EUR", at_twikey
        assert at_twikey["ref"] == accepted["collection"]["collection_id"]
        listed = (await control.get("/transactions", params={"api_key": stack.api_key})).json()
        assert listed["total"] == 1  # the refused attempt never became a transaction


async def _projected(engine: Any, mandate_number: str) -> bool:
    async with engine.connect() as conn:
        row = await conn.execute(
            sa.text("SELECT 1 FROM mandates WHERE mandate_number = :m AND status = 'active'"), {"m": mandate_number}
        )
        return row.first() is not None


async def _nothing_staged(engine: Any) -> bool:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.text("SELECT count(*) FROM twikey_updates"))).scalar_one()) == 0


async def _invoice_when(
    client: httpx.AsyncClient, headers: dict[str, str], invoice_id: str, check: Any, within: float = 45
) -> dict[str, Any]:
    latest: dict[str, Any] = {}

    async def ok() -> bool:
        latest.update((await client.get(f"/v1/invoices/{invoice_id}", headers=headers)).json())
        return bool(check(latest))

    try:
        await eventually(ok, within=within, every=0.2)
    except AssertionError:
        raise AssertionError(f"invoice never got there; last seen {latest}") from None
    return latest
