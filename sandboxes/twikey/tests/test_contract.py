"""The response contract (``twikey_sandbox.contract``) itself: it catches each way the sandbox
used to differ from Twikey's description, and every sandbox response is run through it."""

from __future__ import annotations

import json

import pytest

from twikey_sandbox import contract

ERROR = {"ApiError": "err_not_found", "ApiErrorCode": "err_not_found"}


def _problems(method: str, path: str, status: int, body: object = None, **headers: str) -> list[str]:
    raw = b"" if body is None else json.dumps(body).encode()
    return contract.problems(method, path, status, headers, raw)


@pytest.mark.parametrize(
    ("case", "method", "path", "status", "body", "headers"),
    [
        ("FastAPI's 404 for an unknown route", "GET", "/creditor/nope", 404, {"detail": "Not Found"}, {}),
        ("401 with ApiError headers", "GET", "/creditor/mandate", 401, {"code": "err_no_login", "message": "x"},
         {"ApiError": "err_no_login", "ApiErrorCode": "err_no_login"}),
        ("bulk status as an object", "GET", "/creditor/transaction/bulk", 200, {"batchId": "b", "Entries": []}, {}),
        ("DELETE /payment/link as 204", "DELETE", "/creditor/payment/link", 204, None, {}),
        ("a feed page without X-LAST", "GET", "/creditor/transaction", 200,
         {"Entries": [{"id": 1, "mndtId": "M", "amount": 1.0, "msg": "m", "ref": None, "date": "d", "state": "OPEN"}]},
         {}),
        ("a detail without the rate-limit header", "GET", "/creditor/mandate/detail", 200, {"Mndt": {"MndtId": "M"}},
         {"X-STATE": "SIGNED", "X-COLLECTABLE": "true"}),
        ("an error code documented nowhere", "POST", "/creditor/invite", 400,
         {"code": "err_made_up", "message": "x"}, {"ApiError": "err_made_up", "ApiErrorCode": "err_made_up"}),
        ("an error without its headers", "POST", "/creditor/transaction", 400,
         {"code": "err_no_contract", "message": "x"}, {}),
        ("a pay link in an undocumented state", "GET", "/creditor/payment/link", 200,
         {"Links": [{"id": 1, "amount": 1.0, "msg": "m", "state": "PAID"}]}, {"X-Rate-Limit-Remaining": "5"}),
        ("a 429 without Retry-After", "GET", "/creditor/mandate/detail", 429, {"message": "slow down"}, {}),
    ],
)  # fmt: skip
def test_the_contract_catches(case, method, path, status, body, headers):
    assert _problems(method, path, status, body, **headers), case


def test_the_contract_accepts_the_descriptions_own_examples():
    assert _problems("POST", "/creditor/collect", 200, {"frstMsgId": None, "rcurMsgId": "123"}) == []
    assert _problems("DELETE", "/creditor/payment/link", 200, {}) == []
    assert _problems("GET", "/creditor/nope", 404, {"code": "err_not_found", "message": "x"}, **ERROR) == []
    assert _problems("GET", "/creditor/transaction/bulk", 409) == []
    assert _problems("GET", "/creditor/mandate", 200, {"GrpHdr": {"CreDtTm": "t"}, "Messages": []}) == []


def test_every_response_of_the_suite_goes_through_the_contract(recorder, creditor):
    before = len(recorder.seen)
    creditor.client.get("/mandate")
    creditor.client.get("/no/such/route")
    seen = recorder.seen[before:]
    assert [(x.method, x.path, x.status) for x in seen] == [
        ("GET", "/creditor/mandate", 200), ("GET", "/creditor/no/such/route", 404)
    ]  # fmt: skip
    assert all(contract.problems(x.method, x.path, x.status, x.headers, x.body) == [] for x in seen)
