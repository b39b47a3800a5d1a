"""Composition root of bookkeeping-svc: what the service is made of, in one place."""

from __future__ import annotations

from pathlib import Path

from bookkeeping_svc.entrypoints.api import routers
from bookkeeping_svc.entrypoints.chart_api import router as chart_router
from bookkeeping_svc.entrypoints.consumers import consumers
from bookkeeping_svc.entrypoints.loops import loops
from bookkeeping_svc.entrypoints.reconcile_api import router as reconcile_router
from bookkeeping_svc.settings import Settings
from koppel_shared.service import ServiceDefinition

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

definition = ServiceDefinition(
    name="bookkeeping",
    title="Koppel bookkeeping service",
    description="The only service that talks to Twinfield: connections, memo bookings, matching, retries.",
    settings_cls=Settings,
    migrations_dir=MIGRATIONS,
    routers=[*routers, chart_router, reconcile_router],
    consumers=consumers,
    loops=loops,
)
