"""The worker's background loops: the booker (continuous), the nightly sweep, and the
reconciler (requested runs, and tonight's run per tenant)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

from bookkeeping_svc.adapters.sync_client import SyncClient
from bookkeeping_svc.service_layer import reconcile
from bookkeeping_svc.service_layer.gateway import gateway
from bookkeeping_svc.service_layer.scheduler import Scheduler, sweep
from bookkeeping_svc.settings import Settings
from koppel_shared.logging import get_logger
from koppel_shared.service import Loop, Runtime

log = get_logger(__name__)


def loops(runtime: Runtime) -> Sequence[Loop]:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    booker = Scheduler(runtime, gateway(runtime), settings)
    runtime.extras["booker"] = booker

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

    sync = SyncClient(settings.sync_url, settings.sync_token.get_secret_value(), timeout=settings.sync_timeout_seconds)
    runtime.extras.setdefault("closers", []).append(sync.close)
    reconciler = reconcile.Reconciler(runtime, gateway(runtime), sync)

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
