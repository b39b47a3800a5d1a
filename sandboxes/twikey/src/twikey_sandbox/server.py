"""Composition root: `create_app()` wires state, routers, fault middleware and error handlers;
`run()` serves it with uvicorn and prints the default creditor's key and the base URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from koppel_shared.snapshots import Snapshot, keep_app_state

from . import auth, control, feeds, mandates, pages, paylinks, transactions
from .errors import ApiError, RateLimited, error_response, rate_limited_response
from .faults import FaultRegistry, fault_middleware
from .state import SandboxState
from .webhooks import WebhookDispatcher


def create_app(
    api_key: str | None = None,
    webhook_url: str | None = None,
    private_key: str | None = None,
    fault_seed: int | None = None,
    state_file: Path | None = None,
) -> FastAPI:
    """A fresh sandbox with one default creditor (random API key unless given), or, with
    ``state_file``, the sandbox as it was when that file was last written."""
    snapshot = Snapshot(state_file) if state_file else None
    loaded = snapshot.load() if snapshot else None
    state: SandboxState = loaded if isinstance(loaded, SandboxState) else SandboxState()
    if loaded is not state or (api_key is not None and api_key not in state.creditors):
        state.add_creditor(
            api_key=api_key, name="Koppel Demo Creditor", private_key=private_key, webhook_url=webhook_url
        )
    faults = FaultRegistry(seed=fault_seed)
    hooks = WebhookDispatcher(state, faults)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await app.state.webhooks.aclose()

    app = FastAPI(title="Twikey sandbox", version="1.0", lifespan=lifespan)
    app.state.sandbox = state
    app.state.faults = faults
    app.state.webhooks = hooks

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc)

    @app.exception_handler(RateLimited)
    async def _rate_limited(request: Request, exc: RateLimited) -> Response:
        return rate_limited_response(exc.retry_after)

    @app.exception_handler(404)
    async def _not_found(request: Request, exc: Exception) -> Response:
        if _is_api(request):  # an unknown Twikey route: Twikey's error shape, not FastAPI's
            return error_response(ApiError("err_not_found", status=404, message="No such endpoint"))
        detail = getattr(exc, "detail", "Not Found")
        return JSONResponse({"detail": detail}, status_code=404)

    @app.exception_handler(405)
    async def _not_allowed(request: Request, exc: Exception) -> Response:
        if _is_api(request):
            return error_response(ApiError("err_not_found", status=405, message="No such endpoint for this method"))
        return JSONResponse({"detail": getattr(exc, "detail", "Method Not Allowed")}, status_code=405)

    app.middleware("http")(fault_middleware)
    for module in (auth, mandates, transactions, paylinks, feeds, control, pages):
        app.include_router(module.router)
    if snapshot:
        keep_app_state(app, snapshot, lambda: app.state.sandbox)
    return app


def _is_api(request: Request) -> bool:
    return request.url.path == "/creditor" or request.url.path.startswith("/creditor/")


def default_creditor_banner(app: FastAPI, base: str) -> str:
    state: SandboxState = app.state.sandbox
    c = state.creditors[state.default_api_key]
    templates = ", ".join(f"{scheme}={ct}" for ct, scheme in c.templates.items())
    return (
        "Twikey sandbox\n"
        f"  base URL   : {base}/creditor\n"
        f"  control API: {base}/_sandbox  (docs at {base}/docs)\n"
        f"  API key    : {c.api_key}\n"
        f"  templates  : {templates}\n"
        f"  merchant id: {c.merchant_id}\n"
        f"  webhook URL: {c.webhook_url or '(none)'}"
    )


def run(host: str, port: int, api_key: str | None = None, webhook_url: str | None = None,
        state_file: Path | None = None) -> None:  # fmt: skip
    app = create_app(api_key=api_key, webhook_url=webhook_url, state_file=state_file)
    print(default_creditor_banner(app, f"http://{host}:{port}"), flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info")
