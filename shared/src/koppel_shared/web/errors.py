"""Errors as ``application/problem+json`` (RFC 9457) with a stable machine-readable ``code``.

Validation errors name each offending field and the rule it broke, so an ERP developer can fix
the request without reading our logs. Anything unexpected is a 500 with code ``internal_error``
and the correlation id, never a stack trace.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from koppel_shared import errors as app_errors
from koppel_shared.logging import get_logger

log = get_logger(__name__)
PROBLEM = "application/problem+json"


class Problem(Exception):
    """Raise from a route for a refusal that only the HTTP edge knows of (a bad query parameter, a
    missing scope): ``raise Problem(422, "invalid_since", "...")``. Use cases raise
    ``koppel_shared.errors`` instead, which ``STATUS_BY_KIND`` turns into the same body."""

    def __init__(self, status: int, code: str, detail: str, title: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title or code.replace("_", " ").capitalize()
        self.extra = extra


def problem_response(
    request: Request, status: int, code: str, detail: str, title: str | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": f"https://koppel.dev/problems/{code}",
        "title": title or code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": detail,
        "instance": request.url.path,
        "correlation_id": getattr(request.state, "correlation_id", None),
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if body["correlation_id"]:
        # 500s are answered outside the request middleware; keep the id on them too.
        headers["X-Request-ID"] = body["correlation_id"]
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        errors.append(
            {"field": ".".join(loc) or "body", "rule": err.get("type", "invalid"), "message": err.get("msg", "")}
        )
    return errors


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


# The one place an application error gets its HTTP status. Looked up along the class's MRO, so a
# service's own subclass (e.g. ``class MandateGone(NotFound)``) answers as its kind does.
STATUS_BY_KIND: dict[type[app_errors.AppError], int] = {
    app_errors.Malformed: 400,
    app_errors.Unauthenticated: 401,
    app_errors.Forbidden: 403,
    app_errors.NotFound: 404,
    app_errors.Conflict: 409,
    app_errors.TooLong: 414,
    app_errors.Invalid: 422,
    app_errors.UpstreamFailed: 502,
    app_errors.Unavailable: 503,
}


def status_of(exc: app_errors.AppError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS_BY_KIND:
            return STATUS_BY_KIND[kind]
    return 500  # a bare AppError says nothing of its meaning: a bug of ours, not the caller's


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.code, exc.detail, exc.title, **exc.extra)

    @app.exception_handler(app_errors.AppError)
    async def _app_error(request: Request, exc: app_errors.AppError) -> JSONResponse:
        status = status_of(exc)
        if status == 500:
            log.error("http.unclassified_app_error", path=request.url.path, code=exc.code)
        return problem_response(request, status, exc.code, exc.detail, exc.title, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(request, 422, "validation_error", detail, "Invalid request", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return problem_response(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("http.unhandled_error", path=request.url.path)
        return problem_response(request, 500, "internal_error", "unexpected error; quote the correlation id")
