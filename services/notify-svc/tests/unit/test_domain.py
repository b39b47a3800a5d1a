"""Pure rules of notify-svc: signatures, URL/address checks, retry schedule, disabling,
subscriptions and feed cursors."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from notify_svc.domain.delivery import DEFAULT_SCHEDULE, DisablePolicy, Outcome, classify, next_delay
from notify_svc.domain.payload import webhook_payload
from notify_svc.domain.signing import format_secret, sign, webhook_headers
from notify_svc.domain.subscriptions import is_public_type, pattern_error, subscribed
from notify_svc.domain.urls import UrlPolicy, UrlRefused, address_refusal, check_addresses, parse_url
from notify_svc.service_layer.feed import decode_cursor, encode_cursor

SECRET = format_secret(b"0123456789abcdef01234567")


def test_signature_matches_the_standard_webhooks_reference_implementation() -> None:
    body = webhook_payload(
        event_id="e1",
        event_type="mandate.signed",
        version=1,
        tenant_id="t1",
        occurred_at=datetime(2025, 3, 1, tzinfo=UTC),
        correlation_id=None,
        data={"status": "active", "version": 2, "name": "Zoë"},
    ).encode()
    now = int(datetime.now(UTC).timestamp())
    headers = webhook_headers([SECRET], "msg_1", now, body)
    assert Webhook(SECRET).verify(body, headers)["data"]["name"] == "Zoë"
    reference = Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(now, UTC), body.decode())
    assert headers["webhook-signature"] == reference == sign(SECRET, "msg_1", now, body)


def test_during_rotation_both_secrets_verify() -> None:
    other = format_secret(b"another-secret-of-24-byt")
    now = int(datetime.now(UTC).timestamp())
    headers = webhook_headers([other, SECRET], "m", now, b"{}")
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(SECRET).verify(b"{}", headers)
    Webhook(other).verify(b"{}", headers)


def test_payload_is_compact_json_with_the_resource_version() -> None:
    body = webhook_payload(
        event_id="e",
        event_type="collection.paid",
        version=1,
        tenant_id="t",
        occurred_at=datetime(2025, 1, 1, tzinfo=UTC),
        correlation_id="c",
        data={"version": 7},
    )
    assert json.loads(body)["data"]["version"] == 7
    assert " " not in body


POLICY = UrlPolicy()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.1.1",
        "172.31.255.255",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.251",
        "192.0.2.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1
        "::127.0.0.1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address), POLICY) is not None


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address), POLICY) is None


def test_an_allowed_network_opens_exactly_that_network() -> None:
    policy = UrlPolicy.build(True, ["127.0.0.1/32"])
    assert address_refusal(ipaddress.ip_address("127.0.0.1"), policy) is None
    assert address_refusal(ipaddress.ip_address("127.0.0.2"), policy) is not None
    assert address_refusal(ipaddress.ip_address("::1"), policy) is not None


def test_one_internal_address_among_public_ones_refuses_the_host() -> None:
    with pytest.raises(UrlRefused):
        check_addresses("h", ["8.8.8.8", "10.0.0.1"], POLICY)
    with pytest.raises(UrlRefused):
        check_addresses("h", [], POLICY)
    assert [str(a) for a in check_addresses("h", ["8.8.8.8", "8.8.8.8"], POLICY)] == ["8.8.8.8"]


def test_url_shape() -> None:
    target = parse_url("https://ERP.example.be.:8443/hooks?x=1", POLICY)
    assert (target.host, target.port, target.path) == ("erp.example.be", 8443, "/hooks?x=1")
    assert parse_url("https://[::1]/", POLICY).literal == ipaddress.ip_address("::1")
    for bad in ("http://erp.example.be/", "https://u:p@erp.example.be/", "file:///etc/passwd", "https://"):
        with pytest.raises(UrlRefused):
            parse_url(bad, POLICY)
    assert parse_url("http://erp.example.be/", UrlPolicy(allow_http=True)).port == 80


def test_answers_are_classified() -> None:
    assert classify(200) is Outcome.SUCCEEDED
    assert classify(299) is Outcome.SUCCEEDED
    assert classify(410) is Outcome.GONE
    for code in (None, 301, 400, 404, 429, 500, 503):
        assert classify(code) is Outcome.RETRY


def test_the_default_schedule_spans_about_three_days_with_jitter() -> None:
    total = sum(DEFAULT_SCHEDULE)
    assert timedelta(days=2.5) < timedelta(seconds=total) < timedelta(days=3.5)
    assert list(DEFAULT_SCHEDULE) == sorted(DEFAULT_SCHEDULE)
    assert next_delay(1, DEFAULT_SCHEDULE, 0.2, lambda: 0.0) == pytest.approx(4.0)
    assert next_delay(1, DEFAULT_SCHEDULE, 0.2, lambda: 0.9999) == pytest.approx(6.0, rel=1e-3)
    assert next_delay(len(DEFAULT_SCHEDULE) + 1, DEFAULT_SCHEDULE, 0.2, lambda: 0.5) is None


def test_an_endpoint_is_disabled_only_after_enough_failures_over_enough_time() -> None:
    policy = DisablePolicy(min_failures=10, failing_for=timedelta(days=3))
    now = datetime(2025, 3, 10, tzinfo=UTC)
    assert policy.reason(50, now - timedelta(days=1), now) is None
    assert policy.reason(9, now - timedelta(days=4), now) is None
    assert policy.reason(3, None, now) is None
    assert "10 deliveries in a row failed" in (policy.reason(10, now - timedelta(days=3), now) or "")


def test_subscription_patterns() -> None:
    assert subscribed(["mandate.*"], "mandate.renewed")  # a type unknown today
    assert not subscribed(["mandate.*"], "collection.paid")
    assert subscribed(["*"], "booking.booked")
    assert subscribed(["collection.paid"], "collection.paid")
    assert not subscribed(["collection.paid"], "collection.paid_out")
    assert pattern_error("refund.*") is not None
    assert pattern_error("mandate.") is not None
    assert pattern_error("collection.*") is None
    assert is_public_type("booking.booked")
    assert not is_public_type("twikey.mandate_feed")
    assert not is_public_type("system.ping")


def test_cursors_round_trip_and_nonsense_is_refused() -> None:
    from koppel_shared.errors import Malformed

    assert decode_cursor(encode_cursor(12345)) == 12345
    for bad in ("12", "evf1_!!", "evf1_LTE", ""):
        with pytest.raises(Malformed):
            decode_cursor(bad)
