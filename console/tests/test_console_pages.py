"""The console without a browser: sign-in, CSRF, pages that say so when a service is down, and
dead letters limited to the operator's own tenant. (Browser tests: tests/e2e.)"""

from __future__ import annotations

import uuid
from urllib.parse import unquote

import httpx
import pytest
from asgi_lifespan import LifespanManager

from koppel_console.app import build_app
from koppel_console.settings import Settings
from koppel_shared.auth import issue_token
from koppel_shared.testing.fixtures import TEST_SIGNING_KEY, settings_for_test

pytestmark = pytest.mark.integration


@pytest.fixture
async def console_and_app(database_url: str, broker_prefix: str, cleanup_exchange: None):
    # Every service URL points at a closed port: the pages must still render, with an error box.
    dead = "http://127.0.0.1:9"
    settings = settings_for_test(
        Settings, database_url, broker_prefix,
        mandate_url=dead, collection_url=dead, sync_url=dead, bookkeeping_url=dead, notify_url=dead,
    )  # fmt: skip
    app = build_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://console") as client:
            yield client, settings, app


@pytest.fixture
async def console(console_and_app):
    client, settings, _ = console_and_app
    return client, settings


def token(settings: Settings, scopes: list[str], tenant: uuid.UUID | None = None) -> str:
    return issue_token(TEST_SIGNING_KEY, tenant or uuid.uuid4(), scopes)


async def test_pages_need_sign_in(console):
    client, _ = console
    r = await client.get("/console/mandates")
    assert r.status_code == 303 and r.headers["location"] == "/console/login"


async def test_erp_token_without_operator_scope_is_refused(console):
    client, settings = console
    r = await client.post("/console/login", data={"token": token(settings, ["erp"])})
    assert r.status_code == 403 and "operator scope" in r.text
    r = await client.post("/console/login", data={"token": "not-a-token"})
    assert r.status_code == 401


async def test_signed_in_operator_sees_pages_with_a_clear_error_when_a_service_is_down(console):
    client, settings = console
    r = await client.post("/console/login", data={"token": token(settings, ["operator"])})
    assert r.status_code == 303
    assert "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    for path, service in [
        ("/console/mandates", "mandate-svc"),
        ("/console/invoices", "collection-svc"),
        ("/console/bookings?tab=errors", "bookkeeping-svc"),
        ("/console/reconciliation", "bookkeeping-svc"),
        ("/console/feeds", "sync-svc"),
        ("/console/deliveries", "notify-svc"),
    ]:
        page = await client.get(path)
        assert page.status_code == 200, path
        assert f"{service} is not reachable" in page.text, path


async def test_forms_without_the_csrf_token_change_nothing(console):
    client, settings = console
    await client.post("/console/login", data={"token": token(settings, ["operator"])})
    r = await client.post("/console/feeds/reset", data={"feed": "mandate", "csrf": "forged"})
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"


async def test_dead_letters_page_lists_only_this_tenants_messages(console):
    from koppel_shared.events import new_event
    from koppel_shared.events.system import Ping
    from koppel_shared.messaging.broker import Broker, to_message
    from koppel_shared.messaging.topology import declare_dead_letter_queue

    client, settings = console
    mine, other = uuid.uuid4(), uuid.uuid4()
    broker = Broker(settings.amqp_url.get_secret_value(), settings.exchange)
    await broker.connect()
    try:
        await declare_dead_letter_queue(broker.channel, "sync", settings.queue_prefix, settings.queue_expires_ms)
        for tenant, note in [(mine, "mine"), (other, "theirs")]:
            msg = to_message(new_event(Ping(sender="t", note=note), tenant_id=tenant))
            msg.headers.update({"x-koppel-reason": f"reason-{note}", "x-koppel-queue": "x"})
            await broker.channel.default_exchange.publish(msg, routing_key=f"{settings.queue_prefix}sync.dead-letter")
        await client.post("/console/login", data={"token": token(settings, ["operator"], mine)})
        page = await client.get("/console/dead-letters")
        assert "reason-mine" in page.text and "reason-theirs" not in page.text
    finally:
        await broker.close()


async def test_api_docs_page_lists_every_service_and_says_when_one_is_down(console):
    client, _ = console
    page = await client.get("/console/api-docs")
    assert page.status_code == 200
    for service in ("mandate", "collection", "sync", "bookkeeping", "notify"):
        assert f"{service}-svc is not reachable" in page.text
        assert f"/docs/{service}/openapi.json" in page.text
    # The merged public document and its page, served by the gateway.
    assert 'href="/v1/openapi.json"' in page.text and 'href="/v1/docs"' in page.text


async def test_a_filter_outside_its_choices_or_a_search_too_long_is_refused_before_any_service_is_asked(console):
    client, settings = console
    await client.post("/console/login", data={"token": token(settings, ["operator"])})
    for path, field in [
        ("/console/invoices?status=lost", "status"),
        ("/console/mandates?status=signed", "status"),
        ("/console/deliveries?status=ok", "status"),
        ("/console/invoices?q=" + "x" * 101, "q"),
        ("/console/deliveries?q=mandate%25", "q"),
        ("/console/deliveries?before=-1", "before"),
    ]:
        r = await client.get(path)
        assert r.status_code == 422, path
        assert r.json()["code"] == "validation_error" and field in r.text, path


async def test_overview_is_the_landing_page_and_says_which_service_is_down(console):
    client, settings = console
    signed = await client.post("/console/login", data={"token": token(settings, ["operator"])})
    assert signed.headers["location"] == "/console/overview"
    assert (await client.get("/console/")).headers["location"] == "/console/overview"
    page = await client.get("/console/overview")
    assert page.status_code == 200 and "server-timing" in page.headers
    for service in ("mandate", "collection", "bookkeeping", "sync", "notify"):
        assert f"{service}-svc is not reachable" in page.text
    assert 'aria-label="Collected, paid and booked per day"' in page.text  # an empty chart, not a broken page
    assert "<script" not in page.text  # nothing to run: the charts are plain SVG


async def test_dead_letters_page_shows_this_tenants_parked_updates_and_retries_one(console_and_app, database_url):
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    from collection_svc.bootstrap import make_definition
    from collection_svc.settings import Settings as CollectionSettings
    from koppel_console.services import ServiceApi
    from koppel_shared.migrations import migrate
    from koppel_shared.testing.service_checks import api_client

    client, settings, console_app = console_and_app
    definition = make_definition()
    collection = settings_for_test(CollectionSettings, database_url, settings.queue_prefix)
    await migrate(definition.migrations_dir, collection.database_url)
    mine, other = uuid.uuid4(), uuid.uuid4()
    engine = create_async_engine(collection.database_url)
    insert = sa.text(
        "INSERT INTO twikey_updates (tenant_id, event_id, event_type, data, failed_at, error)"
        " VALUES (:t, :e, 'twikey.transaction.changed', '{}', now(), :error) RETURNING seq"
    )
    async with engine.begin() as conn:
        seq = (await conn.execute(insert, {"t": mine, "e": uuid.uuid4(), "error": "error-mine"})).scalar_one()
        await conn.execute(insert, {"t": other, "e": uuid.uuid4(), "error": "error-theirs"})

    async def parked(tenant: uuid.UUID) -> list[int]:
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text("SELECT seq FROM twikey_updates WHERE tenant_id = :t AND failed_at IS NOT NULL"), {"t": tenant}
            )
            return [r[0] for r in rows]

    try:
        async with api_client(definition, collection) as svc:
            # the console's calls to collection-svc go to the real service app
            console_app.state.service_api = ServiceApi(svc, {"collection": ""})
            await client.post("/console/login", data={"token": token(settings, ["operator"], mine)})
            page = await client.get("/console/dead-letters")
            assert page.status_code == 200
            assert "error-mine" in page.text and "error-theirs" not in page.text
            csrf = page.text.split('name="csrf" value="')[1].split('"')[0]

            forged = await client.post("/console/parked-updates/retry", data={"csrf": "forged", "seq": str(seq)})
            assert forged.status_code == 403 and await parked(mine) == [seq]
            theirs = (await parked(other))[0]
            refused = await client.post("/console/parked-updates/retry", data={"csrf": csrf, "seq": str(theirs)})
            assert refused.status_code == 303 and "answered 404" in unquote(refused.headers["location"])
            assert await parked(other) == [theirs]

            done = await client.post("/console/parked-updates/retry", data={"csrf": csrf, "seq": str(seq)})
            assert done.status_code == 303 and f"Update {seq} put back in line." in unquote(done.headers["location"])
            assert await parked(mine) == []
    finally:
        await engine.dispose()
