"""Composition root of bookkeeping-svc: what the service is made of, in one place."""

from __future__ import annotations

from pathlib import Path

from bookkeeping_svc.adapters.sync_client import SyncClient
from bookkeeping_svc.dependencies import Dependencies
from bookkeeping_svc.entrypoints.api import routers
from bookkeeping_svc.entrypoints.chart_api import router as chart_router
from bookkeeping_svc.entrypoints.consumers import consumers
from bookkeeping_svc.entrypoints.loops import loops
from bookkeeping_svc.entrypoints.reconcile_api import router as reconcile_router
from bookkeeping_svc.service_layer.chart import ChartCache
from bookkeeping_svc.service_layer.gateway import Gateway
from bookkeeping_svc.settings import Settings
from koppel_shared.service import Runtime, ServiceDefinition

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


async def open_dependencies(runtime: Runtime[Settings]) -> Dependencies:
    settings = runtime.settings
    gateway = Gateway(runtime, settings)
    runtime.closers.append(gateway.close)
    sync = SyncClient(settings.sync_url, settings.sync_token.get_secret_value(), timeout=settings.sync_timeout_seconds)
    runtime.closers.append(sync.close)
    return Dependencies(gateway=gateway, sync=sync, chart=ChartCache(ttl=settings.chart_cache_seconds))


definition: ServiceDefinition[Settings, Dependencies] = ServiceDefinition(
    name="bookkeeping",
    title="Koppel bookkeeping service",
    description="The only service that talks to Twinfield: connections, memo bookings, matching, retries.",
    settings_cls=Settings,
    migrations_dir=MIGRATIONS,
    dependencies=open_dependencies,
    routers=[*routers, chart_router, reconcile_router],
    consumers=consumers,
    loops=loops,
)
