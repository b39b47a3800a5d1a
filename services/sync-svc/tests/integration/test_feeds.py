"""Feeds: crash safety, reset/replay, faults, bad messages, concurrent drainers."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from koppel_shared.events.twikey import twikey_event_uuid
from koppel_shared.service import Runtime
from sync_svc.adapters.twikey_client import FeedPage
from sync_svc.service_layer.feeds import drain_tenant
from sync_svc.service_layer.resources import Resources

from .conftest import Tenant

pytestmark = pytest.mark.integration


class Crash(Exception):
    pass


async def _outbox_ids(runtime: Runtime, tenant_id: uuid.UUID, type_: str) -> list[uuid.UUID]:
    async with runtime.engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT id FROM outbox WHERE tenant_id = :t AND type = :ty ORDER BY seq"),
            {"t": tenant_id, "ty": type_},
        )
        return [r[0] for r in rows]


async def _cursor(runtime: Runtime, tenant_id: uuid.UUID, feed: str) -> int | None:
    async with runtime.engine.connect() as conn:
        return await conn.scalar(
            sa.text("SELECT cursor FROM feed_cursors WHERE tenant_id = :t AND feed = :f"), {"t": tenant_id, "f": feed}
        )


async def _seed(tenant: Tenant, mandates: int) -> None:
    r = await tenant.control.post("/seed", json={"api_key": tenant.api_key, "mandates": mandates})
    assert r.status_code == 200, r.text


async def test_a_crash_between_fetch_and_commit_loses_nothing(
    tenant: Tenant, runtime: Runtime, resources: Resources
) -> None:
    await _seed(tenant, 3)
    first = await drain_tenant(runtime, resources, tenant.tenant_id, feeds=("mandate",))
    assert first.ok and first.messages == 3
    cursor = await _cursor(runtime, tenant.tenant_id, "mandate")
    await _seed(tenant, 2)

    async def crash(feed: str, page: FeedPage) -> None:
        if page.items:
            raise Crash("process died after the fetch")

    with pytest.raises(Crash):
        await drain_tenant(runtime, resources, tenant.tenant_id, after_fetch=crash, feeds=("mandate",))
    # Nothing of the fetched page was kept: the cursor stayed, no events were written.
    assert await _cursor(runtime, tenant.tenant_id, "mandate") == cursor
    assert len(await _outbox_ids(runtime, tenant.tenant_id, "twikey.mandate.changed")) == 3

    again = await drain_tenant(runtime, resources, tenant.tenant_id, feeds=("mandate",))
    assert again.ok and again.messages == 2
    assert len(await _outbox_ids(runtime, tenant.tenant_id, "twikey.mandate.changed")) == 5


async def test_feed_reset_replays_with_the_same_event_ids_so_nothing_is_duplicated(
    tenant: Tenant, runtime: Runtime, resources: Resources
) -> None:
    await _seed(tenant, 4)
    seen: list[uuid.UUID] = []

    async def record(feed: str, page: FeedPage) -> None:
        seen.extend(twikey_event_uuid(tenant.tenant_id, f"mandate/{m['EvtId']}") for m in page.items)

    await drain_tenant(runtime, resources, tenant.tenant_id, after_fetch=record, feeds=("mandate",))
    before = await _outbox_ids(runtime, tenant.tenant_id, "twikey.mandate.changed")
    assert before == seen and len(before) == 4
    top = await _cursor(runtime, tenant.tenant_id, "mandate")

    r = await tenant.operator.post("/v1/twikey/feeds/reset", json={"feed": "mandate"})
    assert r.status_code == 200, r.text
    assert r.json()["reset"] == [{"feed": "mandate", "cursor_before": top, "cursor_after": 0}]

    seen.clear()
    replay = await drain_tenant(runtime, resources, tenant.tenant_id, after_fetch=record, feeds=("mandate",))
    assert replay.messages == 4
    assert seen == before  # the same envelope ids ...
    assert await _outbox_ids(runtime, tenant.tenant_id, "twikey.mandate.changed") == before  # ... written once
    assert await _cursor(runtime, tenant.tenant_id, "mandate") == top


async def test_feed_reset_since_a_moment_replays_only_from_there(
    tenant: Tenant, runtime: Runtime, resources: Resources
) -> None:
    await _seed(tenant, 2)
    await drain_tenant(runtime, resources, tenant.tenant_id, feeds=("mandate",))
    middle = await _cursor(runtime, tenant.tenant_id, "mandate")
    async with runtime.engine.connect() as conn:
        moment = await conn.scalar(sa.text("SELECT now()"))
    await _seed(tenant, 3)
    await drain_tenant(runtime, resources, tenant.tenant_id, feeds=("mandate",))

    r = await tenant.operator.post("/v1/twikey/feeds/reset", json={"feed": "mandate", "since": moment.isoformat()})
    assert r.json()["reset"][0]["cursor_after"] == middle
    replay = await drain_tenant(runtime, resources, tenant.tenant_id, feeds=("mandate",))
    assert replay.messages == 3


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "error", "status": 500, "count": 2},
        {"kind": "error", "status": 503, "count": 1},
        {"kind": "rate_limit", "retry_after": 1, "count": 1},
        {"kind": "expired_token", "count": 1},
        {"kind": "timeout", "delay_seconds": 3, "count": 1},
    ],
    ids=["5xx", "503", "429", "expired-token", "timeout"],
)
async def test_feed_drain_survives_twikey_faults(
    tenant: Tenant, runtime: Runtime, resources: Resources, fault: dict
) -> None:
    await _seed(tenant, 2)
    # Log in before the fault so that an expired-token fault hits a real session.
    await tenant.operator.post("/v1/twikey/connection/test")
    await tenant.control.post("/faults", json={"path": "/creditor/mandate", "method": "GET", **fault})
    result = await drain_tenant(runtime, resources, tenant.tenant_id, feeds=("mandate",))
    assert result.ok, result
    assert result.messages == 2
    rules = (await tenant.control.get("/faults")).json()
    assert rules[0]["hits"] >= 1


async def test_twikey_down_is_recorded_on_the_feed_and_nothing_moves(
    tenant: Tenant, runtime: Runtime, resources: Resources
) -> None:
    await _seed(tenant, 1)
    await tenant.control.post("/faults", json={"kind": "error", "status": 502, "path": "/creditor/mandate"})
    result = await drain_tenant(runtime, resources, tenant.tenant_id, feeds=("mandate",))
    assert not result.ok
    status = (await tenant.operator.get("/v1/twikey/feeds")).json()["feeds"]
    mandate = next(f for f in status if f["feed"] == "mandate")
    assert "TwikeyUnavailable" in mandate["last_error"]
    assert mandate["cursor"] is None


async def test_two_concurrent_drainers_never_publish_one_message_twice(
    tenant: Tenant, runtime: Runtime, resources: Resources, settings
) -> None:
    await _seed(tenant, 1500)
    other = await Runtime.open("sync", settings, connect_broker=False)
    from sync_svc.service_layer.resources import open_resources

    other_resources = await open_resources(other)
    fetched: dict[str, list[int]] = {"a": [], "b": []}

    def recorder(name: str):
        async def record(feed: str, page: FeedPage) -> None:
            fetched[name].extend(int(m["EvtId"]) for m in page.items)
            await asyncio.sleep(0)  # let the other drainer run between pages

        return record

    try:
        # Several rounds, so the two really interleave rather than one finishing first.
        for _ in range(3):
            await asyncio.gather(
                drain_tenant(runtime, resources, tenant.tenant_id, after_fetch=recorder("a"), feeds=("mandate",)),
                drain_tenant(other, other_resources, tenant.tenant_id, after_fetch=recorder("b"), feeds=("mandate",)),
            )
    finally:
        await other.close()
    everything = fetched["a"] + fetched["b"]
    assert len(everything) == len(set(everything)) == 1500
    assert len(await _outbox_ids(runtime, tenant.tenant_id, "twikey.mandate.changed")) == 1500


async def test_a_malformed_feed_message_is_recorded_and_the_rest_is_published(
    tenant: Tenant, runtime: Runtime, resources: Resources
) -> None:
    from sync_svc.service_layer import feeds

    await _seed(tenant, 3)

    async def corrupt(feed: str, page: FeedPage) -> None:
        if page.items:
            del page.items[1]["EvtId"]
            page.items[2]["Mndt"]["MaxAmt"] = "lots"

    result = await feeds.drain_tenant(runtime, resources, tenant.tenant_id, after_fetch=corrupt, feeds=("mandate",))
    assert result.ok and result.messages == 3
    assert len(await _outbox_ids(runtime, tenant.tenant_id, "twikey.mandate.changed")) == 2
    status = (await tenant.operator.get("/v1/twikey/feeds")).json()
    assert [e["reason"] for e in status["bad_messages"]] == ["mandate message without a numeric EvtId"]
