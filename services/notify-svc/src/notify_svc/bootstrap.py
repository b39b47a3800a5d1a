"""Composition root of notify-svc: what the service is made of, in one place.

Tests swap parts through ``runtime.extras`` in ``on_open`` (e.g. ``extras["resolver"]``, a fake
DNS used to prove that a name resolving to a private address is refused)."""

from __future__ import annotations

from pathlib import Path

from koppel_shared.service import ServiceDefinition
from notify_svc.entrypoints.api import router
from notify_svc.entrypoints.consumers import consumers
from notify_svc.entrypoints.loops import loops
from notify_svc.entrypoints.sample import router as sample_router
from notify_svc.settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

definition = ServiceDefinition(
    name="notify",
    title="Koppel notify service",
    description="The ERP hears every status change: signed webhooks out and a replayable event feed.",
    settings_cls=Settings,
    migrations_dir=MIGRATIONS,
    routers=[router, sample_router],
    consumers=consumers,
    loops=loops,
)
