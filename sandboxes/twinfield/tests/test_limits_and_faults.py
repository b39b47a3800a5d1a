"""Fair-use credits and 429s, the credit ledger, and injected faults."""

from __future__ import annotations

import httpx
import pytest

from twinfield_sandbox.testing import OFFICE, TNS, envelope, memo_xml, seed_customers

OFFICES = "<list><type>offices</type></list>"


@pytest.fixture(autouse=True)
def customer(http) -> None:
    seed_customers(http, {"code": "1001", "name": "De Korf", "email": "a@dekorf.nl"})


def test_reads_cost_one_credit_and_writes_three_per_client(tw, http) -> None:
    tw.ok(OFFICES)
    tw.ok(OFFICES)
    tw.ok(memo_xml())
    report = http.get("/_sandbox/credits").json()
    ledger = report["clients"]["koppel-sandbox"]
    assert ledger["credits"] == 5
    assert ledger["requests"] == 3
    assert ledger["credits_by_operation"] == {"list": 2, "transactions": 3}
    assert report["client_organisations"][0]["organisation"] == "KOPPEL"


def test_spent_budget_gives_429_with_retry_after_and_is_not_processed(tw, http) -> None:
    http.patch("/_sandbox/config", json={"limits": {"per_client_org_certified": 7}})
    tw.ok(memo_xml())  # 3
    tw.ok(memo_xml())  # 6
    reply = tw.call(memo_xml())  # would be 9 > 7
    assert reply.status == 429
    assert 1 <= int(reply.headers["Retry-After"]) <= 60
    assert len(http.get(f"/_sandbox/offices/{OFFICE}/transactions").json()) == 2
    tw.ok(OFFICES)  # a read of 1 still fits (7)
    assert tw.call(OFFICES).status == 429
    ledger = http.get("/_sandbox/credits").json()["clients"]["koppel-sandbox"]
    assert ledger["credits"] == 7
    assert ledger["rejected_429"] == 2

    # Once the minute has passed the budget is back.
    http.post("/_sandbox/clock/advance", json={"seconds": 61})
    tw.ok(memo_xml())


def test_uncertified_client_gets_the_small_budget(http) -> None:
    client = http.post("/_sandbox/clients", json={"certified": False}).json()
    token = http.post("/_sandbox/tokens", json={"client_id": client["client_id"], "organisation": "KOPPEL"}).json()
    from twinfield_sandbox.testing import Twinfield

    tw = Twinfield(http, token["access_token"])
    for _ in range(8):  # 8 writes = 24 credits of the 25 per organisation
        tw.ok(memo_xml())
    reply = tw.call(memo_xml())
    assert reply.status == 429


def test_timeout_after_write_leaves_the_write_applied(server, token, http) -> None:
    http.post(
        "/_sandbox/faults",
        json={"operation": "transactions", "kind": "timeout", "when": "after", "delay_seconds": 2, "count": 1},
    )
    with httpx.Client(base_url=server.base_url, timeout=0.5) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post(
            "/webservices/processxml.asmx",
            content=envelope(token, memo_xml()),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{TNS}ProcessXmlString"'},
        )
    booked = http.get(f"/_sandbox/offices/{OFFICE}/transactions", params={"daybook": "MEMO"}).json()
    assert len(booked) == 1
    faults = http.get("/_sandbox/faults").json()
    assert faults[0]["fired"] == 1


def test_error_before_processing_writes_nothing_and_count_limits_firing(tw, http) -> None:
    rule = http.post(
        "/_sandbox/faults", json={"operation": "transactions", "kind": "error", "status": 503, "count": 2}
    ).json()
    assert rule["id"]
    first = tw.call(memo_xml())
    second = tw.call(memo_xml())
    assert (first.status, second.status) == (503, 503)
    assert first.fault.findtext("detail/code") == "100"
    assert http.get(f"/_sandbox/offices/{OFFICE}/transactions").json() == []
    tw.ok(memo_xml())
    assert len(http.get(f"/_sandbox/offices/{OFFICE}/transactions").json()) == 1


def test_error_after_processing_has_booked(tw, http) -> None:
    http.post("/_sandbox/faults", json={"operation": "transactions", "kind": "error", "when": "after", "count": 1})
    assert tw.call(memo_xml()).status == 500
    assert len(http.get(f"/_sandbox/offices/{OFFICE}/transactions").json()) == 1


def test_injected_429_and_expired_token_and_clearing(tw, http) -> None:
    http.post("/_sandbox/faults", json={"operation": "list", "kind": "rate_limit", "retry_after": 7})
    reply = tw.call(OFFICES)
    assert reply.status == 429 and reply.headers["Retry-After"] == "7"
    http.delete("/_sandbox/faults")
    http.post("/_sandbox/faults", json={"operation": "*", "kind": "expired_token", "count": 1})
    expired = tw.call(OFFICES)
    assert expired.status == 401 and expired.fault.findtext("detail/code") == "354"
    tw.ok(OFFICES)


def test_fault_rates_other_operations_untouched(tw, http) -> None:
    http.post("/_sandbox/faults", json={"operation": "match", "kind": "error"})
    tw.ok(memo_xml())


def test_bad_fault_spec_is_422(http) -> None:
    assert http.post("/_sandbox/faults", json={"kind": "explode"}).status_code == 422
    assert http.post("/_sandbox/faults", json={"kind": "error", "rate": 2}).status_code == 422


def test_token_endpoint_faults(http) -> None:
    import base64

    issued = http.post("/_sandbox/tokens", json={"client_id": "koppel-sandbox", "organisation": "KOPPEL"}).json()
    http.post("/_sandbox/faults", json={"operation": "token", "kind": "error", "status": 502, "count": 1})
    basic = base64.b64encode(b"koppel-sandbox:koppel-sandbox-secret").decode()
    data = {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    headers = {"Authorization": f"Basic {basic}"}
    assert http.post("/auth/authentication/connect/token", data=data, headers=headers).status_code == 502
    assert http.post("/auth/authentication/connect/token", data=data, headers=headers).status_code == 200


def test_concurrency_limit_per_client_and_organisation_gives_429(server, tw, http, token) -> None:
    import threading
    import time

    http.patch("/_sandbox/config", json={"latency_seconds": 1.0, "limits": {"concurrency_per_client_org": 1}})
    results: list[int] = []

    def slow_call() -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            reply = client.post(
                "/webservices/processxml.asmx",
                content=envelope(token, OFFICES, office=None),
                headers={"Content-Type": "text/xml; charset=utf-8"},
            )
            results.append(reply.status_code)

    thread = threading.Thread(target=slow_call)
    thread.start()
    # Wait until the first request is inside the sandbox, then send the second one.
    deadline = time.monotonic() + 10
    while not http.get("/_sandbox/credits").json()["inflight"]:
        assert time.monotonic() < deadline, "first request never arrived"
        time.sleep(0.01)
    second = tw.call(OFFICES)
    thread.join()
    assert second.status == 429
    assert second.headers["Retry-After"] == "1"
    assert results == [200]
