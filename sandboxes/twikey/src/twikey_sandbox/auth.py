"""Login (`POST /creditor`), logout (`GET /creditor`), session checks, OTP and rate limits.

A session token lives 24 h of sandbox time. A missing, unknown or expired token gives 401 with
`ApiError`/`ApiErrorCode: err_no_login`. A wrong API key or OTP at login gives 400 with the same
code, as the OpenAPI kit documents for login.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import uuid

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from .deps import state_of
from .errors import ApiError, RateLimited, error_response, no_login, read_params
from .state import SESSION_LIFETIME_SECONDS, Creditor, Session

router = APIRouter()

OTP_SALT = b"own"


def otp_for(private_key_hex: str, at: float) -> int:
    """Twikey's enhanced-security OTP (reference §1.2): HMAC-SHA256, offset from byte 19."""
    key = OTP_SALT + bytes.fromhex(private_key_hex)
    counter = struct.pack(">Q", int(at) // 30)
    digest = hmac.new(key, counter, hashlib.sha256).digest()
    offset = digest[19] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return value % 100_000_000


def otp_ok(private_key_hex: str, otp: str, at: float) -> bool:
    try:
        given = int(otp)
    except ValueError:
        return False
    # One step either side, for clock skew between client and server.
    return any(otp_for(private_key_hex, at + step * 30) == given for step in (-1, 0, 1))


def authenticate(request: Request) -> Creditor:
    """The creditor behind the request's session token, or 401 err_no_login."""
    state = state_of(request)
    token = request.headers.get("authorization", "")
    session = state.sessions.get(token)
    if session is None:
        raise no_login()
    if state.clock.now() - session.created_at > SESSION_LIFETIME_SECONDS:
        del state.sessions[token]
        raise no_login()
    creditor = state.creditors.get(session.api_key)
    if creditor is None:  # creditor removed by a reset
        raise no_login()
    return creditor


def check_rate_limit(request: Request, creditor: Creditor) -> dict[str, str]:
    """Per-key per-minute budget of the rate-limited (detail/query) endpoints.

    Returns the `X-Rate-Limit-Remaining` header for the response; raises `RateLimited` (429).
    """
    now = request.app.state.sandbox.clock.now()
    minute = int(now // 60)
    window, calls = creditor.rate_window
    if window != minute:
        window, calls = minute, 0
    if calls >= creditor.rate_limit_per_minute:
        retry = max(1, 60 - int(now % 60))
        raise RateLimited(retry)
    creditor.rate_window = (window, calls + 1)
    return {"X-Rate-Limit-Remaining": str(creditor.rate_limit_per_minute - calls - 1)}


@router.post("/creditor")
@router.post("/creditor/", include_in_schema=False)  # clients that join paths with a slash
async def login(request: Request) -> Response:
    state = state_of(request)
    params = await read_params(request)
    creditor = state.creditors.get(params.get("apiToken", ""))
    if creditor is None:
        return error_response(ApiError("err_no_login", message="Invalid API key"))
    if creditor.private_key and not otp_ok(creditor.private_key, params.get("otp", ""), state.clock.now()):
        return error_response(ApiError("err_no_login", message="Invalid or missing OTP"))
    token = str(uuid.uuid4())
    state.sessions[token] = Session(token=token, api_key=creditor.api_key, created_at=state.clock.now())
    return JSONResponse(
        {"Authorization": token},
        headers={"Authorization": token, "X-MERCHANT-ID": str(creditor.merchant_id)},
    )


@router.get("/creditor")
@router.get("/creditor/", include_in_schema=False)
async def logout(request: Request) -> Response:
    state = state_of(request)
    token = request.headers.get("authorization", "")
    if token not in state.sessions:
        return error_response(no_login())
    del state.sessions[token]
    return Response(status_code=204)
