"""The workload's ERP receiver and its signature check, without a running system (the full path is
exercised by bench/end_to_end.py and the chaos run)."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook

from koppel_testkit.workload import ErpReceiver, WorkloadError, _retry, verify_signature

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


def signed(body: bytes, secret: str = SECRET, message_id: str | None = None) -> dict[str, str]:
    """Headers as notify-svc sends them, signed by the reference Standard Webhooks library."""
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    signature = Webhook(secret).sign(message_id, now, body.decode())
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }


def event(type_: str, invoice_number: str) -> bytes:
    return json.dumps(
        {"id": str(uuid.uuid4()), "type": type_, "data": {"invoice_number": invoice_number, "status": "x"}}
    ).encode()


def test_signature_made_by_the_reference_library_verifies() -> None:
    body = event("booking.booked", "INV-1")
    assert verify_signature(SECRET, signed(body), body)


def test_signature_over_another_body_or_secret_does_not_verify() -> None:
    body = event("booking.booked", "INV-1")
    headers = signed(body)
    assert not verify_signature(SECRET, headers, body + b" ")
    other = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    assert not verify_signature(other, headers, body)
    assert not verify_signature(SECRET, {**headers, "webhook-signature": ""}, body)


def test_one_valid_entry_among_several_is_enough_as_during_a_secret_rotation() -> None:
    body = event("collection.paid", "INV-2")
    headers = signed(body)
    headers["webhook-signature"] = "v1,bm90LWEtc2lnbmF0dXJl " + headers["webhook-signature"]
    assert verify_signature(SECRET, headers, body)


def test_stale_timestamp_is_refused() -> None:
    body = event("collection.paid", "INV-3")
    headers = signed(body)
    # Re-sign by hand with a timestamp an hour old.
    import hashlib
    import hmac

    old = str(int(time.time()) - 3600)
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, f"{headers['webhook-id']}.{old}.".encode() + body, hashlib.sha256).digest()
    headers.update({"webhook-timestamp": old, "webhook-signature": "v1," + base64.b64encode(digest).decode()})
    assert not verify_signature(SECRET, headers, body)
    assert verify_signature(SECRET, headers, body, tolerance=None)


def test_receiver_records_signed_deliveries_and_refuses_forged_ones() -> None:
    with ErpReceiver() as receiver, httpx.Client(timeout=10) as http:
        receiver.secret = SECRET
        body = event("booking.booked", "INV-10")
        before = time.time()
        assert http.post(receiver.url, content=body, headers=signed(body)).status_code == 200
        forged = event("booking.booked", "INV-11")
        headers = signed(forged, secret="whsec_" + base64.b64encode(b"x" * 24).decode())
        assert http.post(receiver.url, content=forged, headers=headers).status_code == 401

        assert [d.type for d in receiver.received] == ["booking.booked"]
        assert receiver.received[0].data["invoice_number"] == "INV-10"
        assert receiver.types_for("INV-10") == {"booking.booked"}
        assert receiver.types_for("INV-11") == set()
        first = receiver.first_seen("booking.booked", "INV-10")
        assert first is not None and before <= first <= time.time()
        assert receiver.first_seen("collection.paid", "INV-10") is None
        assert len(receiver.rejected) == 1


def test_receiver_keeps_duplicates_and_the_first_time_seen() -> None:
    with ErpReceiver() as receiver, httpx.Client(timeout=10) as http:
        receiver.secret = SECRET
        body = event("collection.paid", "INV-20")
        headers = signed(body, message_id="msg_same")
        http.post(receiver.url, content=body, headers=headers)
        first = receiver.first_seen("collection.paid", "INV-20")
        http.post(receiver.url, content=body, headers=headers)
        assert [d.webhook_id for d in receiver.received] == ["msg_same", "msg_same"]
        assert receiver.first_seen("collection.paid", "INV-20") == first


def test_deliveries_before_the_secret_is_known_are_checked_when_it_is() -> None:
    with ErpReceiver() as receiver, httpx.Client(timeout=10) as http:
        good = event("mandate.signed", "INV-30")
        bad = event("mandate.signed", "INV-31")
        http.post(receiver.url, content=good, headers=signed(good))
        http.post(receiver.url, content=bad, headers={**signed(bad), "webhook-signature": "v1,AAAA"})
        assert receiver.received == []
        receiver.secret = SECRET
        assert [d.data["invoice_number"] for d in receiver.received] == ["INV-30"]
        assert len(receiver.rejected) == 1


def test_fail_rate_one_answers_500_and_records_nothing() -> None:
    with ErpReceiver(fail_rate=1.0) as receiver, httpx.Client(timeout=10) as http:
        receiver.secret = SECRET
        body = event("booking.booked", "INV-40")
        assert http.post(receiver.url, content=body, headers=signed(body)).status_code == 500
        assert receiver.received == [] and receiver.failed == 1
        receiver.fail_rate = 0.0
        assert http.post(receiver.url, content=body, headers=signed(body)).status_code == 200
        assert len(receiver.received) == 1


def test_fail_rate_fails_about_that_fraction_of_requests() -> None:
    with ErpReceiver(fail_rate=0.3, seed=7) as receiver, httpx.Client(timeout=10) as http:
        receiver.secret = SECRET
        statuses = []
        for i in range(200):
            body = event("booking.booked", f"INV-5{i}")
            statuses.append(http.post(receiver.url, content=body, headers=signed(body)).status_code)
    failed = statuses.count(500)
    assert 30 <= failed <= 90
    assert receiver.failed == failed and len(receiver.received) == 200 - failed


@pytest.mark.parametrize("secret", ["not-a-secret", "whsec_!!!", "whsec_"])
def test_malformed_secret_verifies_nothing(secret: str) -> None:
    body = event("booking.booked", "INV-60")
    assert not verify_signature(secret, signed(body), body)


def test_retry_repeats_a_refusal_until_it_succeeds() -> None:
    answers = iter([WorkloadError("409 in progress"), httpx.ConnectError("refused"), "done"])

    def action() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert _retry(action, within=10, every=0.01) == "done"


def test_retry_gives_up_after_its_time_with_the_last_error() -> None:
    calls = []

    def action() -> None:
        calls.append(time.monotonic())
        raise WorkloadError(f"refused {len(calls)}")

    with pytest.raises(WorkloadError, match="refused"):
        _retry(action, within=0.3, every=0.05)
    assert len(calls) >= 2 and calls[-1] - calls[0] < 2


def test_retry_does_not_repeat_a_programming_error() -> None:
    calls = []

    def action() -> None:
        calls.append(1)
        raise KeyError("id")

    with pytest.raises(KeyError):
        _retry(action, within=5, every=0.01)
    assert calls == [1]
