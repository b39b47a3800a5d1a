"""Composition root of notify-svc: what the service is made of, in one place."""

from __future__ import annotations

from pathlib import Path

from koppel_shared.service import ServiceDefinition
from notify_svc.entrypoints.consumers import consumers
from notify_svc.settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

definition = ServiceDefinition(
    name="notify",
    title="Koppel notify service",
    description="The ERP hears every status change: signed webhooks out and a replayable event feed.",
    settings_cls=Settings,
    migrations_dir=MIGRATIONS,
    consumers=consumers,
)
