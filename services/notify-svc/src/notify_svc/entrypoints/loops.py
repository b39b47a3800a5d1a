"""The worker's background loops: the delivery dispatcher and the retention cleanup."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from koppel_shared.logging import get_logger
from koppel_shared.loops import periodic
from koppel_shared.service import Loop, Runtime
from notify_svc.dependencies import Dependencies
from notify_svc.entrypoints.dispatcher import Dispatcher
from notify_svc.service_layer.feed import purge_events
from notify_svc.settings import Settings

log = get_logger(__name__)


def cleanup_loop(runtime: Runtime[Settings]) -> Loop:
    settings = runtime.settings

    async def run(stop: asyncio.Event) -> None:
        async def purge() -> None:
            cutoff = datetime.now(UTC) - timedelta(days=settings.event_retention_days)
            removed = 0
            while True:
                async with runtime.uow() as uow:
                    n = await purge_events(uow, cutoff)
                removed += n
                if n == 0 or stop.is_set():
                    break
            if removed:
                log.info("notify.events_purged", count=removed, before=cutoff.isoformat())

        await periodic("notify.cleanup", settings.cleanup_interval_seconds, purge, stop)

    return run


def loops(runtime: Runtime[Settings], deps: Dependencies) -> Sequence[Loop]:
    dispatcher = Dispatcher(runtime, deps.resolver)
    return [dispatcher.run, cleanup_loop(runtime)]
