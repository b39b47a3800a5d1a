"""The FastAPI app factory every service uses: lifespan that opens and closes the service's
resources, ``/healthz`` (process alive), ``/readyz`` (database and broker reachable),
``/metrics`` (Prometheus), problem+json errors and request context."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from koppel_shared.web.errors import install_error_handlers
from koppel_shared.web.middleware import RequestContextMiddleware

ReadyCheck = Callable[[], Awaitable[None]]


def create_app(
    *,
    title: str,
    settings: Any,
    routers: Sequence[APIRouter] = (),
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    ready_checks: dict[str, ReadyCheck] | None = None,
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

    app = FastAPI(title=title, description=description, version=version, lifespan=_lifespan)
    app.state.settings = settings
    app.state.ready_checks = dict(ready_checks or {})
    install_error_handlers(app)
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
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app
