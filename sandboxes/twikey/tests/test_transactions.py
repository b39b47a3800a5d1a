"""Transactions: create, idempotency, validation, bank outcomes and reversals in the feed, remove,
collect, bulk."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest


def _create(creditor, mndt, amount="49.99", **extra):
    r = creditor.client.post("/transaction", data={"mndtId": mndt, "message": "Invoice 1", "amount": amount, **extra})
    assert r.status_code == 200, r.text
    return r.json()["Entries"][0]


def test_create_response_shape(creditor, mandate):
    entry = _create(creditor, mandate, ref="INV-1", place="Gent")
    assert entry["mndtId"] == mandate and entry["amount"] == 49.99 and entry["ref"] == "INV-1"
    assert {"id", "contractId", "contract", "msg", "place", "reqcolldt", "date"} <= set(entry)
    assert entry["date"].endswith("Z")


def test_idempotency_key_reuse_is_409_err_duplicate_ref(creditor, mandate):
    headers = {"Idempotency-Key": "abc-123"}
    data = {"mndtId": mandate, "message": "Invoice 2", "amount": "10.00"}
    assert creditor.client.post("/transaction", data=data, headers=headers).status_code == 200
    again = creditor.client.post("/transaction", data=data, headers=headers)
    assert again.status_code == 409
    assert again.headers["ApiErrorCode"] == "err_duplicate_ref" and again.json()["code"] == "err_duplicate_ref"
    assert len(creditor.drain("/transaction", "Entries")) == 1  # the replay created nothing


def test_a_retry_arriving_while_the_first_request_is_in_flight_gets_409(creditor, mandate):
    """A client that timed out retries while Twikey is still handling the first request: one
    transaction, not two. The first request's body is held back until the retry is answered."""
    import socket
    from urllib.parse import urlencode, urlsplit

    url = urlsplit(str(creditor.client.base_url))
    headers = {"Idempotency-Key": "in-flight-1"}
    body = urlencode({"mndtId": mandate, "message": "Invoice 3", "amount": "10.00"}).encode()
    first = socket.create_connection((url.hostname, url.port), timeout=10)
    first.sendall(
        (
            f"POST {url.path.rstrip('/')}/transaction HTTP/1.1\r\nHost: {url.hostname}\r\n"
            f"Authorization: {creditor.client.headers['Authorization']}\r\nIdempotency-Key: in-flight-1\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body[:5]
    )
    retry = creditor.client.post(
        "/transaction", content=body, headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}
    )
    first.sendall(body[5:])
    answer = first.recv(65536).decode()
    first.close()
    statuses = sorted([retry.status_code, int(answer.split(" ", 2)[1])])
    assert statuses == [200, 409]
    assert len(creditor.drain("/transaction", "Entries")) == 1


def test_failed_request_does_not_consume_the_idempotency_key(creditor, mandate):
    headers = {"Idempotency-Key": "retry-me"}
    data = {"mndtId": mandate, "message": "x", "amount": "-1"}
    bad = creditor.client.post("/transaction", data=data, headers=headers)
    assert bad.json()["code"] == "err_invalid_amount"
    ok = creditor.client.post("/transaction", data={**data, "amount": "1"}, headers=headers)
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ({"mndtId": "NOPE", "message": "x", "amount": "1"}, "err_no_contract"),
        ({"message": "x", "amount": "1"}, "err_missing_params"),
        ({"message": "", "amount": "1"}, "err_msg_missing"),
        ({"message": "x", "amount": "abc"}, "err_invalid_amount"),
        ({"message": "x", "amount": "1.001"}, "err_invalid_amount"),
        ({"message": "x<script>", "amount": "1"}, "err_invalid_sepachars"),
        # outside EPC's basic Latin set: accented letters, & _ and typographic signs too
        ({"message": "Zoë Ünal & Söhne <BV> — «€»", "amount": "1"}, "err_invalid_sepachars"),
        ({"message": "Zoë", "amount": "1"}, "err_invalid_sepachars"),
        ({"message": "INV_1", "amount": "1"}, "err_invalid_sepachars"),
        ({"message": "Invoice × 2", "amount": "1"}, "err_invalid_sepachars"),
        ({"message": "x", "amount": "1", "reqcolldt": "2020-01-01"}, "err_invalid_date"),
        ({"message": "x", "amount": "1", "reqcolldt": "not-a-date"}, "err_invalid_date"),
    ],
)
def test_validation_errors(creditor, mandate, data, code):
    data = {"mndtId": mandate, **data} if "mndtId" not in data and code != "err_missing_params" else data
    r = creditor.client.post("/transaction", data=data)
    assert r.status_code == 400
    assert r.headers["ApiError"] == code and r.json()["code"] == code


def test_paid_then_reversed_appears_in_the_feed(creditor, mandate, control, receiver_reset):
    tx = _create(creditor, mandate)
    control.post(f"/transactions/{tx['id']}/paid")
    r = control.post(f"/transactions/{tx['id']}/reverse", json={"code": "MD06"})
    assert r.json()["state"] == "ERROR"
    entries = creditor.drain("/transaction", "Entries")
    assert [(e["id"], e["state"], e.get("bkerror")) for e in entries] == [
        (tx["id"], "OPEN", None), (tx["id"], "PAID", None), (tx["id"], "ERROR", "MD06"),
    ]  # fmt: skip
    assert entries[2]["bkmsg"] == "Refund request by end customer" and entries[2]["final"] is True
    assert entries[1]["bkdate"].endswith("Z") and entries[1]["bkamount"] == 49.99
    payments = [parse_qs(h.query) for h in receiver_reset.wait_for(4) if "type=payment" in h.query]
    assert payments == [{"type": ["payment"]}, {"type": ["payment"]}]


def test_failed_with_r_code_gives_error_with_bkerror(creditor, mandate, control):
    tx = _create(creditor, mandate)
    r = control.post(f"/transactions/{tx['id']}/fail", json={"code": "AM04"})
    assert r.json()["state"] == "ERROR"
    last = creditor.drain("/transaction", "Entries")[-1]
    assert (last["state"], last["bkerror"], last["bkmsg"]) == ("ERROR", "AM04", "Insufficient funds")
    # a final error cannot be paid any more; a reversal needs PAID
    assert control.post(f"/transactions/{tx['id']}/paid").json()["code"] == "err_transaction_invalid_action"
    assert control.post(f"/transactions/{tx['id']}/reverse", json={}).status_code == 400


def test_unpaid_then_paid_and_reoffer(creditor, mandate, control):
    a = _create(creditor, mandate)
    control.post(f"/transactions/{a['id']}/fail", json={"code": "MS02", "state": "UNPAID", "final": False})
    control.post(f"/transactions/{a['id']}/paid")
    b = _create(creditor, mandate)
    control.post(f"/transactions/{b['id']}/fail", json={"code": "AM04"})
    assert creditor.client.post("/transaction/action", data={"id": b["id"], "action": "reoffer"}).status_code == 204
    states = [(e["id"], e["state"]) for e in creditor.drain("/transaction", "Entries")]
    assert states == [
        (a["id"], "OPEN"), (a["id"], "UNPAID"), (a["id"], "PAID"),
        (b["id"], "OPEN"), (b["id"], "ERROR"), (b["id"], "OPEN"),
    ]  # fmt: skip


def test_remove_open_transaction_but_not_a_collected_one(creditor, mandate):
    a = _create(creditor, mandate, ref="R1")
    assert creditor.client.delete("/transaction", params={"ref": "R1"}).status_code == 204
    assert creditor.client.delete("/transaction", params={"id": a["id"]}).json()["code"] == "err_not_found"
    b = _create(creditor, mandate)
    ids = creditor.client.post("/collect", data={"ct": creditor.core}).json()
    assert ids["frstMsgId"] is None and ids["rcurMsgId"] is not None
    assert creditor.client.delete("/transaction", params={"id": b["id"]}).json()["code"] == "err_not_authorised"


def test_collect_sends_a_mandates_first_collection_as_rcur_and_bank_run_settles_by_amount(creditor, mandate, control):
    _create(creditor, mandate, amount="50")
    _create(creditor, mandate, amount="8")
    first = creditor.client.post("/collect", data={"ct": creditor.core}).json()
    assert first["frstMsgId"] is None and first["rcurMsgId"]  # as [OAS]'s example
    assert creditor.client.post("/collect", data={"ct": creditor.core}).json() == {"frstMsgId": None, "rcurMsgId": None}
    assert creditor.client.post("/collect", data={"ct": 4242}).json()["code"] == "err_no_such_ct"
    assert control.post("/bank/run", json={"api_key": creditor.api_key}).json()["paid"] == 1
    last = {e["amount"]: e for e in creditor.drain("/transaction", "Entries")}
    assert last[50.0]["state"] == "PAID" and last[8.0]["bkerror"] == "AM04"


def test_bulk_create_answers_409_while_processing_then_an_array_of_results(creditor, mandate, control):
    items = [{"mndtId": mandate, "message": f"Bulk {i}", "amount": 5 + i, "ref": f"B{i}"} for i in range(3)]
    items.append({"mndtId": "NOPE", "message": "x", "amount": 1})
    batch = creditor.client.post("/transaction/bulk", json=items).json()["batchId"]
    assert creditor.client.get("/transaction/bulk", params={"batchId": batch}).status_code == 409
    control.post("/clock/advance", json={"seconds": 2})
    result = creditor.client.get("/transaction/bulk", params={"batchId": batch}).json()
    assert isinstance(result, list)  # [OAS] "returns array of transaction IDs with import status"
    assert [(r["ref"], r["mndtId"], r["status"]) for r in result] == [
        ("B0", mandate, "ok"), ("B1", mandate, "ok"), ("B2", mandate, "ok"), (None, "NOPE", "error")
    ]  # fmt: skip
    assert all(isinstance(r["id"], int) for r in result[:3]) and result[3]["id"] is None
    assert result[3]["code"] == "err_no_contract"
    assert len(creditor.drain("/transaction", "Entries")) == 3
    unknown = creditor.client.get("/transaction/bulk", params={"batchId": "3d775df4-c339-4c39-828f-6746b7a4c210"})
    assert unknown.json()["code"] == "err_not_found"


def test_transaction_detail_lists_open_ones(creditor, mandate, control):
    a = _create(creditor, mandate)
    b = _create(creditor, mandate)
    control.post(f"/transactions/{b['id']}/paid")
    r = creditor.client.get("/transaction/detail")
    assert [e["id"] for e in r.json()["Entries"]] == [a["id"]]
    assert r.headers["X-Rate-Limit-Remaining"]


def test_rate_limited_endpoint_answers_429_after_the_budget(creditor, control):
    control.patch(f"/creditors/{creditor.api_key}", json={"rate_limit_per_minute": 2})
    # Budgets are per minute; a minute boundary may pass once during the loop, hence 6 tries.
    answers = [creditor.client.get("/transaction/detail") for _ in range(6)]
    codes = [r.status_code for r in answers]
    assert 429 in codes and codes[:2] == [200, 200]
    limited = answers[codes.index(429)]
    assert int(limited.headers["X-Rate-Limit-Retry-After-Seconds"]) >= 1
    assert "ApiErrorCode" not in limited.headers
    assert creditor.client.get("/transaction").status_code == 200  # feeds are not rate-limited
