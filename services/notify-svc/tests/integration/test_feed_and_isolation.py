"""The event feed (paging without gaps or repeats, also while events keep arriving; type filters;
retention) and tenant isolation on every route."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from notify_support import (
    Receiver,
    Stack,
    collection_paid,
    mandate_signed,
    notify_settings,
    running_stack,
    wait_until,
)

from notify_svc.adapters.orm import events
from notify_svc.service_layer.feed import decode_cursor, encode_cursor, purge_events

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(database_url: str, broker_prefix: str, cleanup_exchange: None) -> AsyncIterator[Stack]:
    async with running_stack(notify_settings(database_url, broker_prefix)) as s:
        yield s


async def page(stack: Stack, tenant: uuid.UUID, after: str | None = None, **params: Any) -> dict[str, Any]:
    query = {k: v for k, v in {"after": after, **params}.items() if v is not None}
    r = await stack.client.get("/v1/events", params=query, headers=stack.headers(tenant))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def read_all(stack: Stack, tenant: uuid.UUID, after: str | None = None, **params: Any) -> tuple[list[str], str]:
    ids: list[str] = []
    while True:
        p = await page(stack, tenant, after, **params)
        ids += [e["id"] for e in p["data"]]
        after = p["next_cursor"]
        if not p["has_more"]:
            return ids, after


async def feed_count(stack: Stack, tenant: uuid.UUID) -> int:
    async with stack.runtime.engine.connect() as conn:
        n = await conn.execute(sa.select(sa.func.count()).select_from(events).where(events.c.tenant_id == tenant))
        return int(n.scalar_one())


async def test_feed_pages_without_gaps_or_repeats_while_events_keep_arriving(stack: Stack) -> None:
    tenant = uuid.uuid4()
    first = [mandate_signed(tenant, version=i) for i in range(25)]
    await stack.publish(*first)
    await wait_until(lambda: _eq(feed_count(stack, tenant), 25))

    later = [collection_paid(tenant, version=i) for i in range(40)]

    async def keep_publishing() -> None:
        for e in later:
            await stack.publish(e)
            await asyncio.sleep(0.005)

    publisher = asyncio.create_task(keep_publishing())
    seen: list[str] = []
    cursor: str | None = None
    # Page slowly with a small page size while the other 40 arrive; then drain.
    while not publisher.done() or len(seen) < 65:
        p = await page(stack, tenant, cursor, limit=4)
        seen += [e["id"] for e in p["data"]]
        cursor = p["next_cursor"]
        if not p["data"]:
            await asyncio.sleep(0.05)
    await publisher

    expected = {str(e.id) for e in first + later}
    assert len(seen) == len(set(seen)), "an event was returned twice"
    assert set(seen) == expected, "an event was skipped"
    # The order is stable: reading again from the start gives the same sequence.
    again, _ = await read_all(stack, tenant, limit=7)
    assert again == seen
    # Nothing new: the cursor stays put and returns nothing.
    p = await page(stack, tenant, cursor)
    assert p["data"] == []
    assert p["next_cursor"] == cursor


async def test_feed_payloads_are_the_webhook_payloads_and_types_filter(stack: Stack, receiver: Receiver) -> None:
    tenant = uuid.uuid4()
    r = await stack.client.post(
        "/v1/webhook-endpoints", json={"url": receiver.url("feed-same")}, headers=stack.headers(tenant)
    )
    assert r.status_code == 201
    m, c = mandate_signed(tenant, version=2), collection_paid(tenant)
    await stack.publish(m, c)
    await wait_until(lambda: _eq(_async(len(receiver.at("feed-same"))), 2))

    import json

    delivered = {json.loads(h.body)["id"]: json.loads(h.body) for h in receiver.at("feed-same")}
    p = await page(stack, tenant)
    assert {e["id"]: e for e in p["data"]} == delivered

    only_collections, cursor = await read_all(stack, tenant, types="collection.*")
    assert only_collections == [str(c.id)]
    # A filtered reader's cursor moves past what it looked at.
    assert (await page(stack, tenant, cursor, types="collection.*"))["data"] == []
    assert [e["id"] for e in (await page(stack, tenant, types="mandate.signed,booking.*"))["data"]] == [str(m.id)]

    bad = await stack.client.get("/v1/events?after=nonsense", headers=stack.headers(tenant))
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_cursor"
    bad = await stack.client.get("/v1/events?types=refund.*", headers=stack.headers(tenant))
    assert bad.status_code == 422


@pytest.mark.parametrize("position", [2**63, 10**30, -1, "9" * 60])
async def test_crafted_cursor_is_refused_with_400(stack: Stack, position: int | str) -> None:
    # Cursors are opaque, but a client can still craft one: a position beyond int64 used to reach
    # the database and answer 500.
    crafted = encode_cursor(int(position)) if isinstance(position, int) else "evf1_" + str(position)
    r = await stack.client.get("/v1/events", params={"after": crafted}, headers=stack.headers(uuid.uuid4()))
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_cursor"


async def test_cursor_ahead_of_every_position_handed_out_is_refused(stack: Stack) -> None:
    # A cursor past every position the feed ever handed out would silently hide the events that
    # get those positions later: refuse it instead of answering an empty page.
    tenant = uuid.uuid4()
    await stack.publish(mandate_signed(tenant))
    await wait_until(lambda: _eq(feed_count(stack, tenant), 1))
    _, cursor = await read_all(stack, tenant)
    ahead = encode_cursor(decode_cursor(cursor) + 1_000_000)
    r = await stack.client.get("/v1/events", params={"after": ahead}, headers=stack.headers(tenant))
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_cursor"
    assert (await page(stack, tenant, cursor))["data"] == []


async def test_events_past_retention_are_purged(stack: Stack) -> None:
    tenant = uuid.uuid4()
    await stack.publish(mandate_signed(tenant), mandate_signed(tenant))
    await wait_until(lambda: _eq(feed_count(stack, tenant), 2))
    async with stack.runtime.engine.begin() as conn:
        first = (await conn.execute(sa.select(sa.func.min(events.c.seq)).where(events.c.tenant_id == tenant))).scalar()
        await conn.execute(
            sa.update(events).where(events.c.seq == first).values(received_at=datetime.now(UTC) - timedelta(days=90))
        )
    async with stack.runtime.uow() as uow:
        assert await purge_events(uow, datetime.now(UTC) - timedelta(days=30)) >= 1
    assert await feed_count(stack, tenant) == 1


async def test_a_tenant_never_sees_or_changes_another_tenants_data(stack: Stack, receiver: Receiver) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    ha, hb = stack.headers(a), stack.headers(b)
    r = await stack.client.post("/v1/webhook-endpoints", json={"url": receiver.url("tenant-a")}, headers=ha)
    endpoint = r.json()
    event = mandate_signed(a)
    await stack.publish(event, mandate_signed(b))
    await wait_until(lambda: _eq(_async(len(receiver.at("tenant-a"))), 1))
    await wait_until(lambda: _eq(feed_count(stack, b), 1))

    eid = endpoint["id"]
    assert (await stack.client.get(f"/v1/webhook-endpoints/{eid}", headers=hb)).status_code == 404
    assert (
        await stack.client.patch(f"/v1/webhook-endpoints/{eid}", json={"enabled": False}, headers=hb)
    ).status_code == 404
    assert (await stack.client.post(f"/v1/webhook-endpoints/{eid}/rotate-secret", headers=hb)).status_code == 404
    r = await stack.client.post(f"/v1/webhook-endpoints/{eid}/redeliver", json={"event_id": str(event.id)}, headers=hb)
    assert r.status_code == 404
    assert (await stack.client.delete(f"/v1/webhook-endpoints/{eid}", headers=hb)).status_code == 404
    assert (await stack.client.get("/v1/webhook-endpoints", headers=hb)).json()["data"] == []
    assert (await stack.client.get(f"/v1/deliveries?endpoint={eid}", headers=hb)).status_code == 404
    assert (await stack.client.get("/v1/deliveries", headers=hb)).json()["data"] == []
    [delivery] = (await stack.client.get(f"/v1/deliveries?endpoint={eid}", headers=ha)).json()["data"]
    assert (await stack.client.get(f"/v1/deliveries/{delivery['id']}", headers=hb)).status_code == 404
    assert (await stack.client.get(f"/v1/deliveries/{delivery['id']}", headers=ha)).status_code == 200
    feed_b = (await page(stack, b))["data"]
    assert [e["tenant_id"] for e in feed_b] == [str(b)]
    # Tenant A's cursor used by tenant B still shows only B's events.
    cursor_a = (await page(stack, a))["next_cursor"]
    assert all(e["tenant_id"] == str(b) for e in (await page(stack, b, "evf1_MA"))["data"])
    assert all(e["tenant_id"] == str(b) for e in (await page(stack, b, cursor_a))["data"])
    # B's endpoint gets only B's events: A's endpoint got exactly A's one event.
    assert [h.headers["webhook-id"] for h in receiver.at("tenant-a")] == [str(event.id)]
    # And the endpoint is untouched.
    assert (await stack.client.get(f"/v1/webhook-endpoints/{eid}", headers=ha)).json()["enabled"] is True


async def _eq(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def _async(value: Any) -> Any:
    return value


async def test_delivery_log_filters_by_event_type_or_family(stack: Stack, receiver: Receiver) -> None:
    tenant = uuid.uuid4()
    headers = stack.headers(tenant)
    r = await stack.client.post("/v1/webhook-endpoints", json={"url": receiver.url("types")}, headers=headers)
    assert r.status_code == 201, r.text
    await stack.publish(mandate_signed(tenant), collection_paid(tenant))

    async def types(**params: str) -> list[str]:
        reply = await stack.client.get("/v1/deliveries", params=params, headers=headers)
        assert reply.status_code == 200, reply.text
        return sorted(d["event_type"] for d in reply.json()["data"])

    await wait_until(lambda: _eq(_async(len(receiver.at("types"))), 2))
    assert await types() == ["collection.paid", "mandate.signed"]
    assert await types(type="mandate.*") == ["mandate.signed"]
    assert await types(type="collection.paid") == ["collection.paid"]
    assert await types(type="collection.reversed") == []
    bad = await stack.client.get("/v1/deliveries", params={"type": "mandate%"}, headers=headers)
    assert bad.status_code == 422
