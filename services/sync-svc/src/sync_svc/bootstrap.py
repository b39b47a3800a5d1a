"""Composition root of sync-svc: what the service is made of, in one place."""

from __future__ import annotations

from pathlib import Path

from koppel_shared.service import ServiceDefinition
from sync_svc.entrypoints import api, internal, tenants, tokens, webhooks
from sync_svc.entrypoints.consumers import consumers
from sync_svc.entrypoints.loops import loops
from sync_svc.service_layer.resources import open_resources
from sync_svc.settings import Settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

definition = ServiceDefinition(
    name="sync",
    title="Koppel Twikey sync service",
    description="The only service that talks to Twikey: connections, webhooks, feeds, commands.",
    settings_cls=Settings,
    migrations_dir=MIGRATIONS,
    # The webhook route first: it is the hottest, and routes are matched in order.
    routers=[webhooks.router, api.router, internal.router, tenants.router, tokens.router],
    consumers=consumers,
    loops=loops,
    on_open=open_resources,
)
