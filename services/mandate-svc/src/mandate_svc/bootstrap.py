"""Composition root of mandate-svc: what the service is made of, in one place."""

from __future__ import annotations

from pathlib import Path

from koppel_shared.service import Runtime, ServiceDefinition
from mandate_svc.adapters.sync_client import HttpSyncClient
from mandate_svc.dependencies import Dependencies
from mandate_svc.entrypoints import unclaimed_api
from mandate_svc.entrypoints.api import routers
from mandate_svc.entrypoints.consumers import consumers
from mandate_svc.entrypoints.loops import loops
from mandate_svc.settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


async def open_dependencies(runtime: Runtime[Settings]) -> Dependencies:
    settings = runtime.settings
    client = HttpSyncClient(
        settings.sync_url,
        settings.sync_token.get_secret_value(),
        timeout=settings.sync_timeout_seconds,
        attempts=settings.sync_attempts,
    )
    runtime.closers.append(client.close)
    return Dependencies(sync=client)


definition: ServiceDefinition[Settings, Dependencies] = ServiceDefinition(
    name="mandate",
    title="Koppel mandate service",
    description="Mandates and their lifecycle: the ERP's mandate API, Twikey signing states.",
    settings_cls=Settings,
    migrations_dir=MIGRATIONS,
    dependencies=open_dependencies,
    routers=[*routers, unclaimed_api.router],
    consumers=consumers,
    loops=loops,
)
