"""Composition root of collection-svc: what the service is made of, in one place.

``make_definition(clock=...)`` lets tests and benchmarks drive time: the clock is what the API,
the consumers and the scheduler call "now".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from collection_svc.entrypoints.api import routers
from collection_svc.entrypoints.consumers import consumers
from collection_svc.entrypoints.policy_preview import router as preview_router
from collection_svc.entrypoints.scheduler import applier_loop, scheduler_loop
from collection_svc.service_layer.parked import count_parked
from collection_svc.service_layer.records import Clock, utc_now
from collection_svc.settings import Settings
from koppel_shared.metrics import PARKED_MESSAGES
from koppel_shared.service import Loop, Runtime, ServiceDefinition

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def make_definition(clock: Clock = utc_now) -> ServiceDefinition:
    async def on_open(runtime: Runtime) -> None:
        runtime.extras["clock"] = clock

    def loops(runtime: Runtime) -> Sequence[Loop]:
        loops = [applier_loop(runtime, clock)]
        if getattr(runtime.settings, "scheduler_enabled", True):
            loops.append(scheduler_loop(runtime, clock))
        return loops

    async def metrics(runtime: Runtime) -> None:
        async with runtime.session_factory() as session:
            PARKED_MESSAGES.labels(service="collection").set(await count_parked(session))

    return ServiceDefinition(
        name="collection",
        title="Koppel collection service",
        description=(
            "Invoices, the collection policy, subscriptions, pay links and payment states. Every invoice "
            "says why it is or is not being collected."
        ),
        settings_cls=Settings,
        migrations_dir=MIGRATIONS,
        routers=[*routers, preview_router],
        consumers=consumers,
        loops=loops,
        on_open=on_open,
        metrics=metrics,
    )


definition = make_definition()
