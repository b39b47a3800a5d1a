"""The worker's background loops: the booker (continuous), the nightly sweep, and the
reconciler (requested runs, and tonight's run per tenant)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

from bookkeeping_svc.dependencies import Dependencies
from bookkeeping_svc.service_layer import reconcile
from bookkeeping_svc.service_layer.scheduler import Scheduler, sweep
from bookkeeping_svc.settings import Settings
from koppel_shared.logging import get_logger
from koppel_shared.service import Loop, Runtime

log = get_logger(__name__)


def loops(runtime: Runtime[Settings], deps: Dependencies) -> Sequence[Loop]:
    settings = runtime.settings
    booker = Scheduler(runtime, deps.gateway, settings)

    async def sweeper(stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.sweep_interval_seconds)
            if stop.is_set():
                return
            try:
                await sweep(runtime)
            except Exception as exc:
                log.exception("booker.sweep_failed", error=repr(exc))

    reconciler = reconcile.Reconciler(runtime, deps.gateway, deps.sync)

    async def reconciling(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await reconcile.request_nightly(runtime, settings, datetime.now(UTC))
                while not stop.is_set() and (run := await reconcile.claim(runtime, settings.reconcile_stale_seconds)):
                    await reconciler.execute(run)
            except Exception as exc:  # database away: look again after the poll interval
                log.warning("reconcile.look_failed", error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.reconcile_poll_seconds)

    return [booker.run, sweeper, reconciling]
