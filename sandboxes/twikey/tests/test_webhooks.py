"""Webhooks: signature, delivery to a real receiver, records, dropped webhooks, failures."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs, unquote

import twikey

from twikey_sandbox.webhooks import sign


def test_signature_matches_the_published_test_vector():
    assert sign("1234", "abc=123&name=abc") == "55261CBC12BF62000DE1371412EF78C874DBC46F513B078FB9FF8643B2FD4FC2"


def test_webhook_arrives_signed_with_the_api_key(creditor, control, receiver_reset):
    mndt = creditor.invite()["mndtId"]
    control.post(f"/mandates/{mndt}/sign", json={"iban": "BE16645348971174"})
    hooks = receiver_reset.wait_for(2)
    assert len(hooks) == 2
    for hook in hooks:
        assert hook.path == "/hook"
        expected = hmac.new(creditor.api_key.encode(), unquote(hook.query).encode(), hashlib.sha256).hexdigest()
        assert hook.headers["X-Signature"] == expected.upper()
        assert twikey.Webhook.verify_signature(unquote(hook.query), hook.headers["X-Signature"], creditor.api_key)
    assert parse_qs(hooks[1].query) == {
        "type": ["contract"], "mandateNumber": [mndt], "event": ["Sign"], "state": ["SIGNED"],
    }  # fmt: skip


def test_attempts_are_recorded_with_their_outcome(creditor, control, receiver_reset):
    receiver_reset.status = 503
    control.post("/webhooks/test", json={"api_key": creditor.api_key})
    receiver_reset.wait_for(1)
    attempts = control.get("/webhooks", params={"api_key": creditor.api_key, "wait": True}).json()
    assert [(a["params"], a["status"], a["status_code"]) for a in attempts] == [
        ({"msg": "dummytest", "type": "event"}, "failed", 503)
    ]
    assert attempts[0]["signature"] == receiver_reset.received[0].headers["X-Signature"]


def test_dropped_webhooks_are_recorded_but_not_sent(creditor, control, receiver_reset):
    control.post("/faults", json={"kind": "drop_webhook", "path": "*event=Invite*"})
    mndt = creditor.invite()["mndtId"]
    control.post(f"/mandates/{mndt}/sign", json={"iban": "BE16645348971174"})
    hooks = receiver_reset.wait_for(1)
    attempts = control.get("/webhooks", params={"api_key": creditor.api_key, "wait": True}).json()
    assert [a["status"] for a in attempts] == ["dropped", "delivered"]
    assert [parse_qs(h.query)["event"] for h in hooks] == [["Sign"]]


def test_unreachable_webhook_url_does_not_block_the_api(sandbox, control):
    import httpx

    made = control.post("/creditors", json={"webhook_url": "http://127.0.0.1:9/nowhere"}).json()
    token = httpx.post(sandbox.api, data={"apiToken": made["api_key"]}).headers["Authorization"]
    r = httpx.post(f"{sandbox.api}/invite", data={"ct": made["templates"]["CORE"]}, headers={"Authorization": token})
    assert r.status_code == 200
    attempts = control.get("/webhooks", params={"api_key": made["api_key"], "wait": True}).json()
    assert attempts[0]["status"] == "failed" and attempts[0]["error"]


def test_values_with_spaces_are_percent_encoded_and_signed_decoded(creditor, control, receiver_reset):
    mndt = creditor.invite(ct=creditor.b2b)["mndtId"]
    control.post(f"/mandates/{mndt}/sign", json={"iban": "BE16645348971174"})
    control.post(f"/mandates/{mndt}/bank/reject", json={"reason": "no way"})
    control.post(f"/mandates/{mndt}/refuse", json={})  # not PREPARED any more: refused, no webhook
    hooks = receiver_reset.wait_for(3)
    assert "+" not in "".join(h.query for h in hooks)
    for hook in hooks:
        assert twikey.Webhook.verify_signature(unquote(hook.query), hook.headers["X-Signature"], creditor.api_key)


def test_test_webhook_query_is_the_one_twikey_sends(creditor, control, receiver_reset):
    # The .NET SDK documents the test webhook's query as "msg=dummytest&type=event" (reference §9.1);
    # the signature covers the query as sent, so the order is part of the wire format.
    control.post("/webhooks/test", json={"api_key": creditor.api_key})
    (hook,) = receiver_reset.wait_for(1)
    assert hook.query == "msg=dummytest&type=event"
    assert hook.headers["X-Signature"] == sign(creditor.api_key, "msg=dummytest&type=event")
