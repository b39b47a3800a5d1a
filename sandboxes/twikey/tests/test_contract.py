"""The response contract (``twikey_sandbox.contract``) itself: it catches each way the sandbox
used to differ from Twikey's description, and every sandbox response is run through it."""

from __future__ import annotations

import json
import re

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
        ("a login without the merchant id", "POST", "/creditor", 200, {"Authorization": "t"}, {"Authorization": "t"}),
        ("a cancel reason without its originator", "GET", "/creditor/mandate", 200,
         {"GrpHdr": {"CreDtTm": "2026-01-05T10:00:00Z"}, "Messages": [
             {"EvtId": 1, "EvtTime": "2026-01-05T10:00:00Z", "OrgnlMndtId": "M", "CxlRsn": {"Rsn": "gone"}}]},
         {"X-LAST": "1"}),
        ("an amendment without the mandate", "GET", "/creditor/mandate", 200,
         {"GrpHdr": {"CreDtTm": "2026-01-05T10:00:00Z"}, "Messages": [
             {"EvtId": 1, "EvtTime": "2026-01-05T10:00:00Z", "OrgnlMndtId": "M",
              "AmdmntRsn": {"Rsn": "x", "Orgtr": {}}}]},
         {"X-LAST": "1"}),
        ("an event time that is no UTC timestamp", "GET", "/creditor/mandate", 200,
         {"GrpHdr": {"CreDtTm": "2026-01-05T10:00:00Z"}, "Messages": [
             {"EvtId": 1, "EvtTime": "2026-01-05 10:00", "Mndt": {"MndtId": "M"}}]}, {"X-LAST": "1"}),
        ("a maximum amount that is no amount", "GET", "/creditor/mandate/detail", 200,
         {"Mndt": {"MndtId": "M", "MaxAmt": "-5"}},
         {"X-STATE": "SIGNED", "X-COLLECTABLE": "true", "X-Rate-Limit-Remaining": "5"}),
    ],
)  # fmt: skip
def test_the_contract_catches(case, method, path, status, body, headers):
    assert _problems(method, path, status, body, **headers), case


def test_the_contract_accepts_the_descriptions_own_examples():
    assert _problems("POST", "/creditor/collect", 200, {"frstMsgId": None, "rcurMsgId": "123"}) == []
    assert _problems("DELETE", "/creditor/payment/link", 200, {}) == []
    assert _problems("GET", "/creditor/nope", 404, {"code": "err_not_found", "message": "x"}, **ERROR) == []
    assert _problems("GET", "/creditor/transaction/bulk", 409) == []
    assert (
        _problems("GET", "/creditor/mandate", 200, {"GrpHdr": {"CreDtTm": "2016-04-21T14:57:01Z"}, "Messages": []})
        == []
    )


def test_every_response_of_the_suite_goes_through_the_contract(recorder, creditor):
    before = len(recorder.seen)
    creditor.client.get("/mandate")
    creditor.client.get("/no/such/route")
    seen = recorder.seen[before:]
    assert [(x.method, x.path, x.status) for x in seen] == [
        ("GET", "/creditor/mandate", 200), ("GET", "/creditor/no/such/route", 404)
    ]  # fmt: skip
    assert all(contract.problems(x.method, x.path, x.status, x.headers, x.body) == [] for x in seen)


def _routes_below_creditor(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    paths = app.openapi()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "X", path))
        for path, operations in paths.items()
        if path == "/creditor" or path.startswith("/creditor/")
        for method in operations
    ]


def test_every_endpoint_the_sandbox_serves_has_a_contract(recorder):
    missing = [route for route in _routes_below_creditor(recorder.app) if contract.operation(*route) is None]
    assert missing == []


def test_every_endpoint_answers_successfully_within_the_contract(recorder, creditor, mandate, control):
    """One successful call of each operation of the contract; all of them are checked (by the
    autouse fixture) and none is left out, so the contract covers every endpoint the sandbox serves."""
    api, before = creditor.client, len(recorder.seen)
    extra = api.post("", data={"apiToken": creditor.api_key}).headers["Authorization"]
    api.get("", headers={"Authorization": extra})  # logout of that second session only
    prepared = creditor.invite()["mndtId"]
    api.post("/prepare", data={"ct": creditor.core, "email": "bo@example.be"})
    signed = {"ct": creditor.core, "method": "paper", "iban": "BE16645348971174", "email": "cy@example.be"}
    api.post("/sign", data=signed)
    api.get("/mandate/detail", params={"mndtId": mandate})
    api.post("/mandate/update", data={"mndtId": mandate, "city": "Gent"})
    api.get("/mandate/query", params={"email": "an@example.be"})
    api.post(f"/mandate/{prepared}/action", data={"type": "reminder", "reminder": "1"})
    api.get("/mandate")
    api.delete("/mandate", params={"mndtId": prepared, "rsn": "not needed"})
    tx = api.post("/transaction", data={"mndtId": mandate, "message": "Tour", "amount": "40"}).json()["Entries"][0]
    other = api.post("/transaction", data={"mndtId": mandate, "message": "Tour 2", "amount": "41"}).json()["Entries"][0]
    api.put("/transaction", data={"id": str(tx["id"]), "message": "Tour again"})
    api.get("/transaction")
    api.get("/transaction/detail", params={"id": str(tx["id"])})
    api.get("/transaction/query", params={"fromId": str(tx["id"])})
    api.post("/transaction/action", data={"id": str(tx["id"]), "action": "archive"})
    api.delete("/transaction", params={"id": str(other["id"])})
    batch = api.post("/transaction/bulk", json=[{"mndtId": mandate, "message": "Bulk", "amount": 5}]).json()["batchId"]
    control.post("/clock/advance", json={"seconds": 2})
    api.get("/transaction/bulk", params={"batchId": batch})
    api.post("/collect", data={"ct": creditor.core})
    link = api.post("/payment/link", data={"title": "Tour", "amount": "9.50", "remittance": "TOUR-1"}).json()
    api.get("/payment/link", params={"id": link["id"]})
    api.delete("/payment/link", params={"id": link["id"]})
    api.get("/payment/link/feed", params={"all": "true"})
    api.get("/payment/methods", params={"ct": creditor.core})

    answered = {
        (op.method, op.path)
        for x in recorder.seen[before:]
        if 200 <= x.status < 300 and (op := contract.operation(x.method, x.path)) is not None
    }
    assert [f"{op.method} {op.path or '/'}" for op in contract.OPERATIONS if (op.method, op.path) not in answered] == []
