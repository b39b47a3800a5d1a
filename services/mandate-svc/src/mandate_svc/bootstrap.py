"""Composition root of mandate-svc: what the service is made of, in one place."""

from __future__ import annotations

from pathlib import Path

from koppel_shared.service import ServiceDefinition
from mandate_svc.entrypoints.consumers import consumers
from mandate_svc.settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

definition = ServiceDefinition(
    name="mandate",
    title="Koppel mandate service",
    description="Mandates and their lifecycle: the ERP's mandate API, Twikey signing states.",
    settings_cls=Settings,
    migrations_dir=MIGRATIONS,
    consumers=consumers,
)
