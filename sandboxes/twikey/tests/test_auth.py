"""Login, logout, token expiry, OTP."""

from __future__ import annotations

import hashlib
import hmac
import struct
import time

import httpx


def _independent_otp(private_key_hex: str, at: float) -> int:
    # Written from the reference (§1.2), not imported from the sandbox.
    mac = hmac.new(b"own" + bytes.fromhex(private_key_hex), struct.pack(">Q", int(at // 30)), hashlib.sha256)
    h = mac.digest()
    o = h[19] & 0xF
    return (int.from_bytes(h[o : o + 4], "big") & 0x7FFFFFFF) % 100_000_000


def test_login_returns_token_in_header_and_body_and_merchant_id(sandbox, control):
    made = control.post("/creditors", json={}).json()
    r = httpx.post(sandbox.api, data={"apiToken": made["api_key"]})
    assert r.status_code == 200
    assert r.headers["Authorization"] == r.json()["Authorization"]
    assert r.headers["X-MERCHANT-ID"] == str(made["merchant_id"])
    assert "ApiErrorCode" not in r.headers


def test_login_with_unknown_key_is_400_err_no_login(sandbox):
    r = httpx.post(sandbox.api, data={"apiToken": "wrong"})
    assert r.status_code == 400
    assert r.headers["ApiError"] == r.headers["ApiErrorCode"] == "err_no_login"
    assert r.json()["code"] == "err_no_login"


def test_bad_token_is_401_without_the_api_error_headers(sandbox):
    r = httpx.get(f"{sandbox.api}/mandate", headers={"Authorization": "not-a-session"})
    assert r.status_code == 401
    # [OAS] login: "authentication errors and authorisation errors ... don't have these 2 headers"
    assert "ApiError" not in r.headers and "ApiErrorCode" not in r.headers
    assert r.json()["code"] == "err_no_login"
    assert httpx.get(f"{sandbox.api}/mandate").status_code == 401  # no header at all


def test_token_expires_after_24_hours_and_login_again_works(sandbox, creditor, control):
    assert creditor.client.get("/mandate").status_code == 200
    control.post("/clock/advance", json={"seconds": 23 * 3600})
    assert creditor.client.get("/mandate").status_code == 200
    control.post("/clock/advance", json={"seconds": 3600 + 5})
    r = creditor.client.get("/mandate")
    assert r.status_code == 401 and r.json()["code"] == "err_no_login"
    fresh = httpx.post(sandbox.api, data={"apiToken": creditor.api_key}).headers["Authorization"]
    assert httpx.get(f"{sandbox.api}/mandate", headers={"Authorization": fresh}).status_code == 200


def test_logout_invalidates_the_token(sandbox, control):
    key = control.post("/creditors", json={}).json()["api_key"]
    token = httpx.post(sandbox.api, data={"apiToken": key}).headers["Authorization"]
    assert httpx.get(sandbox.api, headers={"Authorization": token}).status_code == 204
    assert httpx.get(f"{sandbox.api}/mandate", headers={"Authorization": token}).status_code == 401
    assert httpx.get(sandbox.api, headers={"Authorization": token}).status_code == 401


def test_key_with_private_key_needs_a_valid_otp(sandbox, control):
    private = "0123456789ABCDEF0123456789ABCDEF"
    key = control.post("/creditors", json={"private_key": private}).json()["api_key"]
    assert httpx.post(sandbox.api, data={"apiToken": key}).headers["ApiErrorCode"] == "err_no_login"
    wrong = (_independent_otp(private, time.time()) + 1) % 100_000_000
    assert httpx.post(sandbox.api, data={"apiToken": key, "otp": str(wrong)}).status_code == 400
    # sandbox clock == wall clock + offset; compute the OTP at the sandbox's idea of now
    now = time.time() + control.get("/clock").json()["offset_seconds"]
    ok = httpx.post(sandbox.api, data={"apiToken": key, "otp": str(_independent_otp(private, now))})
    assert ok.status_code == 200, ok.text
    assert ok.headers["Authorization"]


def test_control_can_expire_all_sessions_of_a_key(creditor, control):
    assert control.post(f"/creditors/{creditor.api_key}/sessions/expire").json() == {"expired": 1}
    assert creditor.client.get("/transaction").status_code == 401
