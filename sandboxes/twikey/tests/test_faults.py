"""Fault injection: 5xx, 429, latency (before and after the write), expired token, rates, counts."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def mandate(creditor, control):
    mndt = creditor.invite()["mndtId"]
    control.post(f"/mandates/{mndt}/sign", json={"iban": "BE16645348971174"})
    return mndt


def test_error_fault_with_count_then_recovers(creditor, control):
    rule = control.post("/faults", json={"kind": "error", "path": "mandate", "method": "GET", "count": 2}).json()
    assert rule["path"] == "/creditor/mandate"
    codes = [creditor.client.get("/mandate").status_code for _ in range(4)]
    assert codes == [500, 500, 200, 200]
    assert creditor.client.post("/invite", data={"ct": creditor.core}).status_code == 200  # other path
    assert control.get("/faults").json()[0]["hits"] == 2


def test_error_fault_status_is_configurable_and_control_api_is_exempt(creditor, control):
    control.post("/faults", json={"kind": "error", "path": "*", "status": 503})
    assert creditor.client.get("/transaction").status_code == 503
    assert control.get("/health").status_code == 200


def test_error_fault_rate_is_applied(creditor, control):
    control.post("/faults", json={"kind": "error", "path": "transaction", "rate": 0.3, "seed": 7})
    codes = [creditor.client.get("/transaction").status_code for _ in range(200)]
    failures = codes.count(500)
    assert set(codes) == {200, 500}
    assert 30 <= failures <= 90  # 0.3 * 200 = 60; seeded, so the number is reproducible
    assert control.get("/faults").json()[0]["hits"] == failures


def test_zero_rate_never_fires(creditor, control):
    control.post("/faults", json={"kind": "error", "path": "*", "rate": 0})
    assert all(creditor.client.get("/transaction").status_code == 200 for _ in range(20))


def test_rate_limit_fault_gives_429_with_header(creditor, control):
    control.post("/faults", json={"kind": "rate_limit", "path": "transaction", "retry_after": 17, "count": 1})
    r = creditor.client.get("/transaction")
    assert r.status_code == 429 and r.headers["X-Rate-Limit-Retry-After-Seconds"] == "17"
    assert creditor.client.get("/transaction").status_code == 200


def test_latency_after_write_applies_the_write_although_the_client_times_out(creditor, control, mandate):
    control.post(
        "/faults",
        json={"kind": "timeout", "path": "transaction", "method": "POST", "delay_seconds": 2,
              "after_write": True, "count": 1},
    )  # fmt: skip
    with pytest.raises(httpx.ReadTimeout):
        creditor.client.post("/transaction", data={"mndtId": mandate, "message": "slow", "amount": "3"}, timeout=0.3)
    txs = control.get("/transactions", params={"api_key": creditor.api_key}).json()
    assert [t["msg"] for t in txs["items"]] == ["slow"]


def test_error_after_write_applies_the_write_and_loses_its_answer(creditor, control, mandate):
    control.post(
        "/faults",
        json={"kind": "error", "status": 500, "path": "transaction", "method": "POST", "after_write": True, "count": 1},
    )
    r = creditor.client.post("/transaction", data={"mndtId": mandate, "message": "lost", "amount": "3"})
    assert r.status_code == 500
    txs = control.get("/transactions", params={"api_key": creditor.api_key}).json()
    assert [t["msg"] for t in txs["items"]] == ["lost"]


def test_latency_fault_makes_the_client_time_out_then_clears(creditor, control, mandate):
    control.post(
        "/faults",
        json={"kind": "latency", "path": "transaction", "method": "POST", "delay_seconds": 1, "count": 1},
    )
    with pytest.raises(httpx.ReadTimeout):
        creditor.client.post("/transaction", data={"mndtId": mandate, "message": "x", "amount": "3"}, timeout=0.2)
    # count=1: the next call is served at once again
    r = creditor.client.post("/transaction", data={"mndtId": mandate, "message": "y", "amount": "3"}, timeout=5)
    assert r.status_code == 200
    assert control.get("/faults").json()[0]["hits"] == 1


def test_expired_token_fault_invalidates_the_session(creditor, control):
    control.post("/faults", json={"kind": "expired_token", "path": "mandate", "count": 1})
    r = creditor.client.get("/mandate")
    assert r.status_code == 401 and r.json()["code"] == "err_no_login"
    assert creditor.client.get("/mandate").status_code == 401  # token really gone


def test_faults_can_be_listed_deleted_and_cleared(control):
    a = control.post("/faults", json={"kind": "error", "path": "a"}).json()
    control.post("/faults", json={"kind": "error", "path": "b"})
    assert control.delete(f"/faults/{a['id']}").status_code == 200
    assert [f["path"] for f in control.get("/faults").json()] == ["/creditor/b"]
    control.delete("/faults")
    assert control.get("/faults").json() == []
    assert control.post("/faults", json={"kind": "nonsense"}).status_code == 422
    assert control.post("/faults", json={"kind": "error", "rate": 1.5}).status_code == 422
