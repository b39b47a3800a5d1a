"""Composition: `create_app()` builds a FastAPI app with its own `Sandbox` (nothing shared
between apps), and `run()` serves one with uvicorn, printing how to connect."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from koppel_shared.snapshots import Snapshot, keep_app_state

from . import control, oauth, soap
from .config import SandboxConfig
from .sandbox import Sandbox
from .state import SandboxState


def create_app(config: SandboxConfig | None = None, state_file: Path | None = None) -> FastAPI:
    """A sandbox seeded afresh, or, with ``state_file``, as it was when that file was last written
    (its records; rate-limit windows and fault rules start empty)."""
    app = FastAPI(
        title="Twinfield sandbox",
        description="A local stand-in for Twinfield's OAuth2 login and ProcessXml SOAP service.",
        version="0.1.0",
    )
    sandbox = Sandbox(config or SandboxConfig())
    snapshot = Snapshot(state_file) if state_file else None
    loaded = snapshot.load() if snapshot else None
    if isinstance(loaded, SandboxState):
        sandbox.restore(loaded)
    app.state.sandbox = sandbox
    app.include_router(oauth.router)
    app.include_router(soap.router)
    app.include_router(control.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok"}

    if snapshot:
        keep_app_state(app, snapshot, lambda: app.state.sandbox.state)
    return app


def banner(config: SandboxConfig, base_url: str) -> str:
    return "\n".join(
        [
            "Twinfield sandbox",
            f"  login URL        {base_url}  (OAuth at {base_url}/auth/authentication/connect/...)",
            f"  cluster URL      {base_url}",
            f"  ProcessXml       {base_url}{soap.PATH}  (WSDL: ?wsdl)",
            f"  control API      {base_url}/_sandbox/info",
            f"  client id        {config.default_client_id}",
            f"  client secret    {config.default_client_secret}",
            f"  organisation     {config.default_organisation}",
            f"  office code      {config.default_office}",
            "  refresh token    POST /_sandbox/tokens "
            f'{{"client_id": "{config.default_client_id}", "organisation": "{config.default_organisation}"}}',
        ]
    )


def run(host: str = "127.0.0.1", port: int = 8602, config: SandboxConfig | None = None,
        state_file: Path | None = None) -> None:  # fmt: skip
    import uvicorn

    config = config or SandboxConfig()
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base_url = config.base_url or f"http://{shown_host}:{port}"
    print(banner(config, base_url), flush=True)
    uvicorn.run(create_app(config, state_file), host=host, port=port, log_level="info")
