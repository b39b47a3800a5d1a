"""Composition root of collection-svc: what the service is made of, in one place."""

from __future__ import annotations

from pathlib import Path

from collection_svc.entrypoints.consumers import consumers
from collection_svc.settings import Settings
from koppel_shared.service import ServiceDefinition

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

definition = ServiceDefinition(
    name="collection",
    title="Koppel collection service",
    description="Invoices, the collection policy, subscriptions, pay links and payment states.",
    settings_cls=Settings,
    migrations_dir=MIGRATIONS,
    consumers=consumers,
)
