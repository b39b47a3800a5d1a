"""The FastAPI app factory every service uses: lifespan that opens and closes the service's
resources, ``/healthz`` (process alive), ``/readyz`` (database and broker reachable),
``/metrics`` (Prometheus), ``/docs`` (Swagger UI, assets served locally), problem+json errors and
request context."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.utils import generate_unique_id
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from koppel_shared.web.errors import install_error_handlers
from koppel_shared.web.middleware import InputSanityMiddleware, RequestContextMiddleware

ReadyCheck = Callable[[], Awaitable[None]]
MetricsRefresh = Callable[[], Awaitable[None]]


def create_app(
    *,
    title: str,
    settings: Any,
    routers: Sequence[APIRouter] = (),
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    ready_checks: dict[str, ReadyCheck] | None = None,
    metrics_refresh: MetricsRefresh | None = None,
    description: str = "",
    version: str = "1.0.0",
) -> FastAPI:
    @asynccontextmanager
    async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
        if lifespan is None:
            yield
        else:
            async with lifespan(app):
                yield

    # Swagger UI and ReDoc with their assets served by the service itself: sites without internet
    # access see the API documentation too (FastAPI's own pages load them from a CDN).
    app = FastAPIOffline(
        title=title,
        description=description,
        version=version,
        lifespan=_lifespan,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.ready_checks = dict(ready_checks or {})
    install_error_handlers(app)
    app.add_middleware(InputSanityMiddleware)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in request.app.state.ready_checks.items():
            try:
                await check()
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"failing: {type(exc).__name__}: {exc}"[:300]
        ok = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": results}, status_code=200 if ok else 503
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if metrics_refresh is not None:
            await metrics_refresh()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    _document_problems(app)
    return app


def operation_id(route: APIRoute) -> str:
    """A readable operation id, unique across the five services: the public prefix the route lives
    under, then the handler's name without the words the prefix already says
    (``/v1/mandates`` + ``create_mandate`` -> ``mandates_create``, ``/v1/twikey/connection`` +
    ``get_connection`` -> ``twikey_get_connection``). Generated clients name their functions after
    it, and the merged public document (``koppel openapi``) refuses two operations with one id.
    Routes outside ``/v1`` (internal, sandbox) keep FastAPI's own, longer ids."""
    parts = route.path_format.strip("/").split("/")
    if len(parts) < 2 or parts[0] != "v1":
        return generate_unique_id(route)
    prefix = parts[1].replace("-", "_")
    said = {w for word in prefix.split("_") for w in (word, _singular(word))}
    rest = [w for w in route.name.split("_") if w not in said]
    return "_".join([prefix, *rest]) if rest else f"{prefix}_{route.name}"


def _singular(word: str) -> str:
    return word[:-3] + "y" if word.endswith("ies") else word.removesuffix("s")


PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["status", "code", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "description": "stable, machine-readable error code"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "correlation_id": {"type": ["string", "null"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "rule": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}
_COMMON_PROBLEMS = {
    "400": "Malformed request",
    "401": "Missing or invalid tenant token",
    "403": "The token lacks the scope this call needs",
    "404": "Not found (or owned by another tenant)",
    "409": "Conflict (e.g. an idempotency key reused with another body)",
    "413": "Request too large",
    "422": "Invalid input: each offending field with the rule it broke",
    "429": "Too many requests",
    "502": "A dependency (Twikey, Twinfield) answered something unusable",
    "503": "A dependency is unavailable; retry later",
}


def _document_problems(app: FastAPI) -> None:
    """Every operation may answer with a problem+json error; say so in the OpenAPI document so
    that clients (and schema-based tests) know the shape of every answer."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        ref = {"$ref": "#/components/schemas/Problem"}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.setdefault("responses", {})
                for status, text in _COMMON_PROBLEMS.items():
                    responses[status] = {"description": text, "content": {"application/problem+json": {"schema": ref}}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
