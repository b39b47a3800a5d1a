"""The worker's background loops: the booker (continuous), the nightly sweep, and the
reconciler (requested runs, and tonight's run per tenant)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from bookkeeping_svc.dependencies import Dependencies
from bookkeeping_svc.service_layer import reconcile
from bookkeeping_svc.service_layer.scheduler import Scheduler, sweep
from bookkeeping_svc.settings import Settings
from koppel_shared.loops import periodic
from koppel_shared.service import Loop, Runtime


def loops(runtime: Runtime[Settings], deps: Dependencies) -> Sequence[Loop]:
    settings = runtime.settings
    booker = Scheduler(runtime, deps.gateway, settings)

    async def sweep_once() -> None:
        await sweep(runtime)

    async def sweeper(stop: asyncio.Event) -> None:
        # Waits first: a worker that starts has not just ended a night.
        await periodic("booker.sweep", settings.sweep_interval_seconds, sweep_once, stop, wait_first=True)

    reconciler = reconcile.Reconciler(runtime, deps.gateway, deps.sync)

    async def reconciling(stop: asyncio.Event) -> None:
        async def look() -> None:
            await reconcile.request_nightly(runtime, settings, datetime.now(UTC))
            while not stop.is_set() and (run := await reconcile.claim(runtime, settings.reconcile_stale_seconds)):
                await reconciler.execute(run)

        # The database away: look again after the poll interval.
        await periodic("reconcile.look", settings.reconcile_poll_seconds, look, stop)

    return [booker.run, sweeper, reconciling]
