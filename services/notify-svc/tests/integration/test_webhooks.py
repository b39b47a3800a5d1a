"""Webhooks end to end: public events published to the test exchange reach a real local HTTP
receiver, signed (checked by the independent ``standardwebhooks`` package), retried, and the
endpoint is disabled when it keeps failing or answers 410."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from notify_support import (
    Receiver,
    Stack,
    collection_paid,
    make_endpoint,
    mandate_signed,
    notify_settings,
    running_stack,
    wait_until,
)
from standardwebhooks.webhooks import Webhook

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(database_url: str, broker_prefix: str, cleanup_exchange: None) -> AsyncIterator[Stack]:
    async with running_stack(notify_settings(database_url, broker_prefix)) as s:
        yield s


async def deliveries_of(stack: Stack, tenant: uuid.UUID, endpoint_id: str) -> list[dict[str, Any]]:
    r = await stack.client.get(f"/v1/deliveries?endpoint={endpoint_id}", headers=stack.headers(tenant))
    assert r.status_code == 200, r.text
    return r.json()["data"]


async def endpoint_view(stack: Stack, tenant: uuid.UUID, endpoint_id: str) -> dict[str, Any]:
    r = await stack.client.get(f"/v1/webhook-endpoints/{endpoint_id}", headers=stack.headers(tenant))
    assert r.status_code == 200, r.text
    return r.json()


def verify(secret: str, hit: Any) -> dict[str, Any]:
    return Webhook(secret).verify(hit.body, hit.headers)  # type: ignore[no-any-return]


async def test_event_is_delivered_with_a_signature_the_standardwebhooks_package_verifies(
    stack: Stack, receiver: Receiver
) -> None:
    tenant = uuid.uuid4()
    endpoint = await make_endpoint(stack, tenant, receiver.url("signed"), ["mandate.*"])
    assert endpoint["secret"].startswith("whsec_")

    event = mandate_signed(tenant, version=4)
    await stack.publish(event)
    await wait_until(lambda: _async(len(receiver.at("signed")) >= 1))

    hit = receiver.at("signed")[0]
    payload = verify(endpoint["secret"], hit)
    assert hit.headers["webhook-id"] == str(event.id)
    assert payload["type"] == "mandate.signed"
    assert payload["id"] == str(event.id)
    assert payload["tenant_id"] == str(tenant)
    assert payload["data"]["status"] == "active"
    assert payload["data"]["version"] == 4  # the ERP keeps the highest version and ignores stale ones

    async def logged() -> bool:
        items = await deliveries_of(stack, tenant, endpoint["id"])
        return bool(items) and items[0]["status"] == "succeeded"

    await wait_until(logged)
    [delivery] = await deliveries_of(stack, tenant, endpoint["id"])
    assert delivery["event_id"] == str(event.id)
    assert [a["status_code"] for a in delivery["attempt_log"]] == [204]
    assert delivery["attempt_log"][0]["latency_ms"] >= 0


async def test_a_tampered_body_fails_verification(stack: Stack, receiver: Receiver) -> None:
    from standardwebhooks.webhooks import WebhookVerificationError

    tenant = uuid.uuid4()
    endpoint = await make_endpoint(stack, tenant, receiver.url("tampered"))
    await stack.publish(mandate_signed(tenant))
    await wait_until(lambda: _async(len(receiver.at("tampered")) >= 1))
    hit = receiver.at("tampered")[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(hit.body.replace(b"active", b"cancelled"), hit.headers)


async def test_only_subscribed_types_are_delivered(stack: Stack, receiver: Receiver) -> None:
    tenant = uuid.uuid4()
    await make_endpoint(stack, tenant, receiver.url("paid-only"), ["collection.paid"])
    await stack.publish(mandate_signed(tenant), collection_paid(tenant))
    await wait_until(lambda: _async(len(receiver.at("paid-only")) >= 1))

    async def both_in_feed() -> bool:
        r = await stack.client.get("/v1/events", headers=stack.headers(tenant))
        return len(r.json()["data"]) == 2

    await wait_until(both_in_feed)  # the mandate event was handled too, and not delivered
    assert [json.loads(h.body)["type"] for h in receiver.at("paid-only")] == ["collection.paid"]


async def test_a_duplicate_event_is_stored_and_delivered_once(stack: Stack, receiver: Receiver) -> None:
    tenant = uuid.uuid4()
    await make_endpoint(stack, tenant, receiver.url("dup"))
    event = mandate_signed(tenant)
    await stack.publish(event, event)
    marker = mandate_signed(tenant)
    await stack.publish(marker)  # handled after both copies

    async def marker_delivered() -> bool:
        return any(h.headers["webhook-id"] == str(marker.id) for h in receiver.at("dup"))

    await wait_until(marker_delivered)
    ids = [h.headers["webhook-id"] for h in receiver.at("dup")]
    assert ids.count(str(event.id)) == 1


async def test_delivery_is_retried_after_500s_until_it_succeeds(stack: Stack, receiver: Receiver) -> None:
    tenant = uuid.uuid4()
    receiver.script["/flaky"] = [500, 503, 200]
    endpoint = await make_endpoint(stack, tenant, receiver.url("flaky"))
    event = mandate_signed(tenant)
    await stack.publish(event)

    async def succeeded() -> bool:
        items = await deliveries_of(stack, tenant, endpoint["id"])
        return bool(items) and items[0]["status"] == "succeeded"

    await wait_until(succeeded)
    [delivery] = await deliveries_of(stack, tenant, endpoint["id"])
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 503, 200]
    assert delivery["attempts"] == 3
    # every retry carries the same webhook-id, so the ERP can deduplicate
    assert {h.headers["webhook-id"] for h in receiver.at("flaky")} == {str(event.id)}
    view = await endpoint_view(stack, tenant, endpoint["id"])
    assert view["consecutive_failures"] == 0
    assert view["enabled"] is True


async def test_a_timeout_is_retried(stack: Stack, receiver: Receiver) -> None:
    tenant = uuid.uuid4()
    receiver.script["/slow"] = ["hang", 200]
    endpoint = await make_endpoint(stack, tenant, receiver.url("slow"))
    await stack.publish(mandate_signed(tenant))

    async def succeeded() -> bool:
        items = await deliveries_of(stack, tenant, endpoint["id"])
        return bool(items) and items[0]["status"] == "succeeded"

    await wait_until(succeeded)
    [delivery] = await deliveries_of(stack, tenant, endpoint["id"])
    first, second = delivery["attempt_log"]
    assert first["status_code"] is None
    assert "timed out" in first["error"]
    assert second["status_code"] == 200


async def test_an_endpoint_that_keeps_failing_is_disabled_with_a_reason(stack: Stack, receiver: Receiver) -> None:
    tenant = uuid.uuid4()
    receiver.default["/down"] = 500
    endpoint = await make_endpoint(stack, tenant, receiver.url("down"))
    await stack.publish(mandate_signed(tenant))

    async def disabled() -> bool:
        return (await endpoint_view(stack, tenant, endpoint["id"]))["status"] == "disabled"

    await wait_until(disabled)
    view = await endpoint_view(stack, tenant, endpoint["id"])
    assert view["enabled"] is False
    assert "in a row failed" in view["disabled_reason"]
    assert view["consecutive_failures"] >= stack.settings.disable_after_failures
    r = await stack.client.get("/v1/webhook-endpoints?status=disabled", headers=stack.headers(tenant))
    assert [e["id"] for e in r.json()["data"]] == [endpoint["id"]]

    # While disabled, new events are not queued for it; they are in the feed.
    hits_before = len(receiver.at("down"))
    await stack.publish(mandate_signed(tenant))

    async def in_feed() -> bool:
        r = await stack.client.get("/v1/events", headers=stack.headers(tenant))
        return len(r.json()["data"]) == 2

    await wait_until(in_feed)
    [delivery] = await deliveries_of(stack, tenant, endpoint["id"])
    assert delivery["status"] in ("failed", "cancelled")
    assert len(receiver.at("down")) == hits_before

    # Enabling it again starts afresh; redelivering the range sends what it missed.
    receiver.default["/down"] = 200
    r = await stack.client.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": True}, headers=stack.headers(tenant)
    )
    assert r.status_code == 200
    assert r.json()["status"] == "enabled"
    assert r.json()["disabled_reason"] is None
    r = await stack.client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/redeliver",
        json={"since": "2000-01-01T00:00:00Z"},
        headers=stack.headers(tenant),
    )
    assert r.json() == {"queued": 2}

    async def both_succeeded() -> bool:
        items = await deliveries_of(stack, tenant, endpoint["id"])
        return sum(1 for d in items if d["status"] == "succeeded" and d["manual"]) == 2

    await wait_until(both_succeeded)


async def test_410_gone_disables_the_endpoint_at_once(stack: Stack, receiver: Receiver) -> None:
    tenant = uuid.uuid4()
    receiver.default["/gone"] = 410
    endpoint = await make_endpoint(stack, tenant, receiver.url("gone"))
    await stack.publish(mandate_signed(tenant))

    async def disabled() -> bool:
        return (await endpoint_view(stack, tenant, endpoint["id"]))["status"] == "disabled"

    await wait_until(disabled)
    view = await endpoint_view(stack, tenant, endpoint["id"])
    assert "410" in view["disabled_reason"]
    [delivery] = await deliveries_of(stack, tenant, endpoint["id"])
    assert delivery["status"] == "failed"
    assert [a["status_code"] for a in delivery["attempt_log"]] == [410]


async def test_redeliver_one_event(stack: Stack, receiver: Receiver) -> None:
    tenant = uuid.uuid4()
    endpoint = await make_endpoint(stack, tenant, receiver.url("again"))
    event = mandate_signed(tenant)
    await stack.publish(event)
    await wait_until(lambda: _async(len(receiver.at("again")) == 1))

    r = await stack.client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/redeliver",
        json={"event_id": str(event.id)},
        headers=stack.headers(tenant),
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"queued": 1}
    await wait_until(lambda: _async(len(receiver.at("again")) == 2))
    first, second = receiver.at("again")
    assert first.body == second.body
    assert verify(endpoint["secret"], second)["id"] == str(event.id)

    r = await stack.client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/redeliver",
        json={"event_id": str(uuid.uuid4())},
        headers=stack.headers(tenant),
    )
    assert r.status_code == 404


async def test_secret_is_shown_once_and_a_rotated_secret_signs_beside_the_old_one(
    stack: Stack, receiver: Receiver
) -> None:
    tenant = uuid.uuid4()
    endpoint = await make_endpoint(stack, tenant, receiver.url("rotate"))
    assert "secret" not in await endpoint_view(stack, tenant, endpoint["id"])
    r = await stack.client.post(
        f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", json={}, headers=stack.headers(tenant)
    )
    assert r.status_code == 200, r.text
    new_secret = r.json()["secret"]
    assert new_secret != endpoint["secret"]
    assert r.json()["previous_secret_valid_until"] is not None

    await stack.publish(mandate_signed(tenant))
    await wait_until(lambda: _async(len(receiver.at("rotate")) == 1))
    hit = receiver.at("rotate")[0]
    assert verify(new_secret, hit)["type"] == "mandate.signed"
    assert verify(endpoint["secret"], hit)["type"] == "mandate.signed"  # during the grace period


async def test_endpoint_crud_and_validation(stack: Stack, receiver: Receiver) -> None:
    tenant = uuid.uuid4()
    h = stack.headers(tenant)
    r = await stack.client.post(
        "/v1/webhook-endpoints", json={"url": receiver.url("x"), "event_types": ["refund.*"]}, headers=h
    )
    assert r.status_code == 422
    assert r.json()["code"] == "event_types_invalid"
    r = await stack.client.post("/v1/webhook-endpoints", json={"url": "ftp://example.com/"}, headers=h)
    assert r.status_code == 422
    endpoint = await make_endpoint(stack, tenant, receiver.url("crud"), ["mandate.*", "mandate.*", "booking.booked"])
    assert endpoint["event_types"] == ["mandate.*", "booking.booked"]
    r = await stack.client.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", json={"event_types": ["collection.*"]}, headers=h
    )
    assert r.json()["event_types"] == ["collection.*"]
    r = await stack.client.get("/v1/webhook-endpoints", headers=h)
    assert [e["id"] for e in r.json()["data"]] == [endpoint["id"]]
    assert (await stack.client.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=h)).status_code == 204
    assert (await stack.client.get(f"/v1/webhook-endpoints/{endpoint['id']}", headers=h)).status_code == 404
    assert (await stack.client.get("/v1/webhook-endpoints")).status_code == 401


async def _async(value: bool) -> bool:
    return value
