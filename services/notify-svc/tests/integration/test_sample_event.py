"""``POST /v1/webhook-endpoints/{id}/test``: a signed ``koppel.test`` sample reaches a real local
receiver like every webhook (checked by the independent ``standardwebhooks`` package), shows in the
delivery log, stays out of the event feed and out of range redeliveries, and belongs to the tenant."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from notify_support import Receiver, Stack, make_endpoint, mandate_signed, notify_settings, running_stack, wait_until
from standardwebhooks.webhooks import Webhook

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(database_url: str, broker_prefix: str, cleanup_exchange: None) -> AsyncIterator[Stack]:
    async with running_stack(notify_settings(database_url, broker_prefix)) as s:
        yield s


async def test_sample_is_signed_delivered_and_logged_like_every_webhook(stack: Stack, receiver: Receiver) -> None:
    tenant = uuid.uuid4()
    path = f"sample-{tenant.hex[:8]}"
    # subscribed to mandate events only: a sample is sent whatever the endpoint subscribes to
    endpoint = await make_endpoint(stack, tenant, receiver.url(path), ["mandate.*"])
    r = await stack.client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=stack.headers(tenant))
    assert r.status_code == 202, r.text
    delivery_id, event_id = r.json()["delivery_id"], r.json()["event_id"]

    async def received() -> bool:
        return len(receiver.at(path)) == 1

    await wait_until(received)
    hit = receiver.at(path)[0]
    payload = Webhook(endpoint["secret"]).verify(hit.body, hit.headers)
    assert payload["type"] == "koppel.test" and payload["id"] == event_id
    assert payload["tenant_id"] == str(tenant) and payload["data"]["endpoint_id"] == endpoint["id"]
    assert hit.headers["webhook-id"] == event_id
    assert json.loads(hit.body)["type"] == "koppel.test"

    async def logged_as_succeeded() -> bool:
        log = await stack.client.get(f"/v1/deliveries?endpoint={endpoint['id']}", headers=stack.headers(tenant))
        rows = [d for d in log.json()["data"] if d["id"] == delivery_id]
        return bool(rows) and rows[0]["status"] == "succeeded" and rows[0]["event_type"] == "koppel.test"

    await wait_until(logged_as_succeeded)


async def test_sample_stays_out_of_the_feed_and_of_range_redeliveries(stack: Stack, receiver: Receiver) -> None:
    tenant = uuid.uuid4()
    path = f"feed-{tenant.hex[:8]}"
    endpoint = await make_endpoint(stack, tenant, receiver.url(path))
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    r = await stack.client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=stack.headers(tenant))
    assert r.status_code == 202
    event = mandate_signed(tenant)
    await stack.publish(event)

    async def both_received() -> bool:
        return len(receiver.at(path)) == 2

    await wait_until(both_received)
    feed = await stack.client.get("/v1/events", headers=stack.headers(tenant))
    assert [e["id"] for e in feed.json()["data"]] == [str(event.id)]
    replay = await stack.client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/redeliver", json={"since": since}, headers=stack.headers(tenant)
    )
    assert replay.status_code == 202 and replay.json()["queued"] == 1


async def test_another_tenants_endpoint_is_not_found_and_a_disabled_one_is_refused(
    stack: Stack, receiver: Receiver
) -> None:
    owner, stranger = uuid.uuid4(), uuid.uuid4()
    endpoint = await make_endpoint(stack, owner, receiver.url(f"other-{owner.hex[:8]}"))
    r = await stack.client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=stack.headers(stranger))
    assert (r.status_code, r.json()["code"]) == (404, "endpoint_not_found")
    missing = await stack.client.post(f"/v1/webhook-endpoints/{uuid.uuid4()}/test", headers=stack.headers(owner))
    assert missing.status_code == 404
    off = await stack.client.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": False}, headers=stack.headers(owner)
    )
    assert off.status_code == 200, off.text
    r = await stack.client.post(f"/v1/webhook-endpoints/{endpoint['id']}/test", headers=stack.headers(owner))
    assert (r.status_code, r.json()["code"]) == (409, "endpoint_disabled")
    bad = await stack.client.post("/v1/webhook-endpoints/not-a-uuid/test", headers=stack.headers(owner))
    assert bad.status_code == 422
    log = await stack.client.get(f"/v1/deliveries?endpoint={endpoint['id']}", headers=stack.headers(owner))
    assert log.json()["data"] == []
