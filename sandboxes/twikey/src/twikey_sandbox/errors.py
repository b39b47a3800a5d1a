"""Twikey's error wire format: status 400/404/409/429 with `ApiError` + `ApiErrorCode` headers
and a JSON body `{"code", "message"[, "extra"]}` (401 without the headers); plus small helpers to
read request parameters.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from .limits import too_long

MESSAGES = {
    "err_no_login": "Not authorised",
    "err_no_such_ct": "No such contract template",
    "err_invalid_ct": "Invalid contract template",
    "err_no_contract": "No contract was found",
    "err_invalid_state": "The contract is not in a valid state for this action",
    "err_mandate_invalid_state": "One of the mandates had an invalid state",
    "err_invalid_date": "Invalid date",
    "err_invalid_amount": "Invalid amount",
    "err_invalid_sepachars": "Invalid characters in message (only SEPA characters allowed)",
    "err_invalid_params": "Invalid parameter",
    "err_missing_params": "Missing parameter",
    "err_msg_missing": "Message is missing",
    "err_billing_overdrawn": "The amount exceeds the maximum allowed on this mandate",
    "err_duplicate_ref": "This Idempotency-Key was already used",
    "err_duplicate_tx": "Several transactions match this reference",
    "err_not_found": "Not found",
    "err_no_transaction": "No transaction found",
    "err_not_authorised": "Not allowed: already sent to the bank",
    "err_transaction_invalid_action": "Action not valid for the state of the transaction",
    "err_invalid_email": "Invalid e-mail address",
    "err_invalid_name": "Invalid name",
    "err_invalid_country": "Invalid country",
    "err_invalid_lang": "Invalid language",
}


class ApiError(Exception):
    """A Twikey-style error; the app's exception handler renders it."""

    def __init__(
        self,
        code: str,
        status: int = 400,
        message: str | None = None,
        extra: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.message = message or MESSAGES.get(code, code)
        self.extra = extra
        self.headers = headers or {}


class RateLimited(Exception):
    """HTTP 429 on a rate-limited endpoint; rendered by `rate_limited_response`."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def error_response(err: ApiError) -> JSONResponse:
    body: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.extra is not None:
        body["extra"] = err.extra
    # Both headers carry the machine code: Go/Java/.NET read ApiError, the Python SDK ApiErrorCode.
    # Authentication and authorisation errors (401) carry neither (reference §6.1, [OAS] login).
    codes = {} if err.status == 401 else {"ApiError": err.code, "ApiErrorCode": err.code}
    headers = {**codes, **err.headers}
    return JSONResponse(body, status_code=err.status, headers=headers)


def no_login() -> ApiError:
    return ApiError("err_no_login", status=401)


def rate_limited_response(retry_after: int) -> JSONResponse:
    # No ApiError headers: the Python SDK checks those before the rate-limit header on login and
    # would then report a generic error instead of "too many logins".
    return JSONResponse(
        {"message": f"Too many requests, retry after {retry_after} seconds"},
        status_code=429,
        headers={"X-Rate-Limit-Retry-After-Seconds": str(retry_after)},
    )


async def read_params(request: Request) -> dict[str, str]:
    """Query parameters merged with an urlencoded/multipart form body (form wins), held to the
    field lengths of Twikey's description (``limits``) for the endpoint asked."""
    params = {k: v for k, v in request.query_params.items()}
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        for k, v in form.items():
            if isinstance(v, str):
                params[k] = v
    check_lengths(request.method, request.url.path, params)
    return params


def check_lengths(method: str, path: str, params: dict[str, Any]) -> None:
    if found := too_long(method, path, params):
        name, limit = found
        raise ApiError("err_invalid_params", message=f"{name} longer than {limit}", extra=name)


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")
