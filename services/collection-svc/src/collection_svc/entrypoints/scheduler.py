"""The worker's loops: the scheduler submits due collections until none are due, then waits; the
applier applies staged Twikey transaction messages in bulk. Several worker replicas run both side
by side; ``FOR UPDATE SKIP LOCKED`` makes them claim disjoint rows."""

from __future__ import annotations

import asyncio
import contextlib

from collection_svc.service_layer.engine import submit_due
from collection_svc.service_layer.records import Clock
from collection_svc.service_layer.transactions import APPLY_BATCH, apply_twikey_updates
from collection_svc.settings import Settings
from koppel_shared.logging import get_logger
from koppel_shared.service import Loop, Runtime

log = get_logger(__name__)


def scheduler_loop(runtime: Runtime[Settings], clock: Clock) -> Loop:
    settings = runtime.settings
    interval = settings.scheduler_interval_seconds
    batch = settings.scheduler_batch_size

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                submitted = await submit_due(runtime.session_factory, clock(), batch)
            except Exception as exc:  # database away: try again after the interval
                log.warning("scheduler.error", error=repr(exc))
                submitted = 0
            if submitted >= batch:
                continue  # more may be due right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    return run


def applier_loop(runtime: Runtime[Settings], clock: Clock) -> Loop:
    idle = runtime.settings.applier_interval_seconds

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                applied = await apply_twikey_updates(runtime.session_factory, clock, APPLY_BATCH)
            except Exception as exc:  # database away: the messages stay staged
                log.error("applier.error", error=repr(exc))
                applied = 0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=2.0)
            if applied >= APPLY_BATCH:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=idle)

    return run
