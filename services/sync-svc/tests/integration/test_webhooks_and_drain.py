"""Webhooks in, feed drained, events out — the path the other services depend on."""

from __future__ import annotations

import uuid
from urllib.parse import quote, urlencode

import httpx
import pytest
import sqlalchemy as sa

from koppel_shared.events.twikey import twikey_event_uuid
from koppel_shared.service import Runtime
from koppel_shared.testing.fixtures import TEST_SIGNING_KEY
from koppel_shared.testing.service_checks import worker
from koppel_shared.testing.serving import Served
from koppel_shared.testing.waiting import eventually
from sync_svc.bootstrap import definition
from sync_svc.domain.signature import sign
from sync_svc.settings import Settings
from twikey_sandbox import sdk_webhooks

from .conftest import Tap, Tenant

pytestmark = pytest.mark.integration


async def _stored(runtime: Runtime, tenant_id: uuid.UUID) -> int:
    async with runtime.engine.connect() as conn:
        return int(
            await conn.scalar(sa.text("SELECT count(*) FROM received_webhooks WHERE tenant_id = :t"), {"t": tenant_id})
            or 0
        )


async def test_webhook_with_valid_signature_is_stored_and_a_missing_or_wrong_one_is_refused(
    tenant: Tenant, runtime: Runtime
) -> None:
    query = urlencode({"type": "contract", "mandateNumber": "X 1", "event": "Sign"}, quote_via=quote)
    path = f"/webhooks/twikey/{tenant.tenant_id}?{query}"
    good = sign(tenant.api_key, "type=contract&mandateNumber=X 1&event=Sign")  # over the decoded query

    wrong = await tenant.operator.get(path, headers={"X-Signature": sign("not-the-key", query)})
    missing = await tenant.operator.get(path)
    assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_signature")
    assert (missing.status_code, missing.json()["code"]) == (401, "invalid_signature")
    assert await _stored(runtime, tenant.tenant_id) == 0

    ok = await tenant.operator.get(path, headers={"X-Signature": good})
    assert ok.status_code == 204, ok.text
    listed = (await tenant.operator.get("/v1/twikey/webhooks")).json()["items"]
    assert [(w["type"], w["event"], w["mandate_number"]) for w in listed] == [("contract", "Sign", "X 1")]


async def test_webhooks_with_escaped_values_from_the_sandbox_and_with_a_plus_for_a_space_are_accepted(
    tenant: Tenant, sandbox: Served
) -> None:
    ref = "Zoë & Söhne=1 +2"  # space, &, =, + and UTF-8 inside one value
    async with httpx.AsyncClient(base_url=f"{sandbox.base}/creditor", timeout=30) as twikey:
        token = (await twikey.post("", data={"apiToken": tenant.api_key})).headers["Authorization"]
        link = await twikey.post(
            "/payment/link",
            data={"title": "Invoice 7", "amount": "12.50", "remittance": ref},
            headers={"Authorization": token},
        )
    assert link.status_code == 200, link.text
    await tenant.control.post(f"/paylinks/{link.json()['id']}/pay", json={})
    attempts = (await tenant.control.get("/webhooks", params={"api_key": tenant.api_key, "wait": True})).json()
    paid = [a for a in attempts if a["params"].get("ref") == ref]
    assert [(a["status"], a["status_code"]) for a in paid] == [("delivered", 204)]
    wire = paid[0]["url"].split("?", 1)[1].encode()
    verdicts = sdk_webhooks.verdicts(tenant.api_key, wire, paid[0]["signature"])
    assert verdicts["python"] and verdicts["php"]  # the form the sandbox signs, as Twikey's own receivers

    # Twikey may send a space as "+" and sign the decoded text: accepted too.
    plus = await tenant.operator.get(
        f"/webhooks/twikey/{tenant.tenant_id}?type=contract&mandateNumber=X+1&event=Sign",
        headers={"X-Signature": sign(tenant.api_key, "type=contract&mandateNumber=X 1&event=Sign")},
    )
    assert plus.status_code == 204, plus.text
    listed = (await tenant.operator.get("/v1/twikey/webhooks")).json()["items"]
    assert [(w["type"], w["mandate_number"]) for w in listed] == [("contract", "X 1"), ("payment", None)]


async def test_webhook_for_an_unknown_tenant_is_a_clear_404(tenant: Tenant) -> None:
    r = await tenant.operator.get(f"/webhooks/twikey/{uuid.uuid4()}?type=event&msg=dummytest")
    assert (r.status_code, r.json()["code"]) == (404, "unknown_tenant")


async def test_signing_at_twikey_sends_a_webhook_that_drains_the_feed_into_events_on_the_broker(
    tenant: Tenant, settings: Settings, tap: Tap, runtime: Runtime
) -> None:
    async with worker(definition, settings):
        number = await tenant.signed_mandate()
        events = await tap.wait_for("twikey.mandate.changed", 1)
        await eventually(lambda: _none_pending(runtime, tenant.tenant_id), within=20)
    event = events[0]
    assert event["data"]["mandate_number"] == number
    assert event["data"]["change"] == "signed"
    assert event["data"]["iban"] == "BE68539007547034"
    assert event["tenant_id"] == str(tenant.tenant_id)
    assert event["id"] == str(twikey_event_uuid(tenant.tenant_id, event["data"]["twikey_event_id"]))
    # The webhooks that caused it are marked drained; the feed position moved.
    feeds = (await tenant.operator.get("/v1/twikey/feeds")).json()["feeds"]
    mandate_feed = next(f for f in feeds if f["feed"] == "mandate")
    assert mandate_feed["cursor"] == event["data"]["feed_seq"]
    hooks = (await tenant.operator.get("/v1/twikey/webhooks")).json()["items"]
    assert {h["event"] for h in hooks} == {"Invite", "Sign"}
    assert all(h["drained_at"] for h in hooks)


async def test_a_burst_of_webhooks_causes_one_drain_not_one_per_webhook(
    tenant: Tenant, settings: Settings, runtime: Runtime
) -> None:
    query = "type=payment"
    headers = {"X-Signature": sign(tenant.api_key, query)}
    for _ in range(20):
        r = await tenant.operator.get(f"/webhooks/twikey/{tenant.tenant_id}?{query}", headers=headers)
        assert r.status_code == 204
    # A no-op fault rule on the mandate feed counts how often it is read.
    counter = (
        await tenant.control.post(
            "/faults", json={"kind": "latency", "path": "/creditor/mandate", "method": "GET", "delay_seconds": 0}
        )
    ).json()
    async with worker(definition, settings):
        await eventually(lambda: _none_pending(runtime, tenant.tenant_id), within=20)
    rules = {r["id"]: r for r in (await tenant.control.get("/faults")).json()}
    assert rules[counter["id"]]["seen"] == 1


async def _none_pending(runtime: Runtime, tenant_id: uuid.UUID) -> bool:
    async with runtime.engine.connect() as conn:
        left = await conn.scalar(
            sa.text("SELECT count(*) FROM received_webhooks WHERE tenant_id = :t AND drained_at IS NULL"),
            {"t": tenant_id},
        )
    return left == 0


async def test_invite_answers_mandate_number_and_sign_url_and_maps_twikey_errors(tenant: Tenant) -> None:
    ok = await tenant.internal.post(
        "/internal/v1/mandates/invite",
        json={
            "reference": str(uuid.uuid4()),
            "scheme": "B2B",
            "delivery": "email",
            "customer": {"company_name": "Acme NV", "email": "ap@acme.be", "language": "nl"},
        },
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["mandate_number"] and ok.json()["sign_url"].startswith("http")
    mandate = (await tenant.control.get(f"/mandates/{ok.json()['mandate_number']}")).json()
    assert mandate["scheme"] == "B2B"

    bad = await tenant.internal.post(
        "/internal/v1/mandates/invite",
        json={"reference": "r1", "scheme": "CORE", "delivery": "email", "email": "a@b.be", "iban": "BE00123"},
    )
    assert bad.status_code == 422
    assert bad.json()["code"] == "twikey_err_invalid_params"

    await tenant.control.post("/faults", json={"kind": "error", "path": "/creditor/invite", "status": 503})
    down = await tenant.internal.post(
        "/internal/v1/mandates/invite", json={"reference": "r2", "scheme": "CORE", "delivery": "link"}
    )
    assert (down.status_code, down.json()["code"]) == (503, "twikey_unavailable")


async def test_invite_needs_the_internal_scope(tenant: Tenant) -> None:
    r = await tenant.operator.post(
        "/internal/v1/mandates/invite", json={"reference": "r", "scheme": "CORE", "delivery": "link"}
    )
    assert r.status_code == 403


async def test_connection_keeps_the_api_key_encrypted_and_never_returns_it(tenant: Tenant, runtime: Runtime) -> None:
    shown = (await tenant.operator.get("/v1/twikey/connection")).json()
    assert tenant.api_key not in str(shown)
    assert shown["webhook_url"].endswith(f"/webhooks/twikey/{tenant.tenant_id}")
    async with runtime.engine.connect() as conn:
        stored = await conn.scalar(
            sa.text("SELECT api_key_enc FROM twikey_connections WHERE tenant_id = :t"), {"t": tenant.tenant_id}
        )
    assert tenant.api_key not in stored
    tested = (await tenant.operator.post("/v1/twikey/connection/test")).json()
    assert tested["ok"] is True and tested["merchant_id"]
    assert tested["webhook_url"] == shown["webhook_url"]

    bad = await tenant.operator.put(
        "/v1/twikey/connection", json={"api_key": "WRONG-KEY-123", "base_url": shown["base_url"]}
    )
    assert bad.status_code == 200
    failed = (await tenant.operator.post("/v1/twikey/connection/test")).json()
    assert (failed["ok"], failed["code"]) == (False, "err_no_login")


async def test_another_tenant_cannot_see_this_tenants_connection(tenant: Tenant, settings: Settings) -> None:
    from datetime import timedelta

    from koppel_shared.auth import issue_token

    other = issue_token(TEST_SIGNING_KEY, uuid.uuid4(), ["operator"], ttl=timedelta(hours=1))
    r = await tenant.operator.get("/v1/twikey/connection", headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 404


async def test_invite_under_our_mandate_number_is_made_once_however_often_it_is_asked(tenant: Tenant) -> None:
    number = f"KOP{uuid.uuid4().hex.upper()}"
    body = {"reference": str(uuid.uuid4()), "mandate_number": number, "scheme": "CORE", "delivery": "link"}
    first = await tenant.internal.post("/internal/v1/mandates/invite", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["mandate_number"] == number
    again = await tenant.internal.post("/internal/v1/mandates/invite", json=body)
    assert again.json() == {**first.json(), "key": None}
    assert (await tenant.control.get(f"/mandates/{number}")).json()["state"] == "PREPARED"
    listed = (await tenant.control.get("/mandates", params={"api_key": tenant.api_key})).json()["items"]
    assert [m["mndt_id"] for m in listed].count(number) == 1

    other = await tenant.internal.post("/internal/v1/mandates/invite", json={**body, "reference": "someone-else"})
    assert (other.status_code, other.json()["code"]) == (409, "mandate_number_in_use")


async def test_invite_whose_answer_is_lost_is_found_by_a_look_up_not_sent_again(tenant: Tenant) -> None:
    number = f"KOP{uuid.uuid4().hex.upper()}"
    body = {"reference": str(uuid.uuid4()), "mandate_number": number, "scheme": "CORE", "delivery": "email"}
    await tenant.control.post(
        "/faults", json={"kind": "error", "status": 500, "after_write": True, "path": "invite", "count": 1}
    )
    lost = await tenant.internal.post("/internal/v1/mandates/invite", json=body)
    assert lost.status_code == 200, lost.text
    assert lost.json() == {"mandate_number": number, "sign_url": None, "key": None}
    listed = (await tenant.control.get("/mandates", params={"api_key": tenant.api_key})).json()["items"]
    assert [m["mndt_id"] for m in listed].count(number) == 1
