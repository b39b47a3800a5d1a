"""mandate-svc's background work in the worker: expiring invites nobody signed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any

from koppel_shared.logging import get_logger
from koppel_shared.loops import periodic
from koppel_shared.service import Runtime
from mandate_svc.dependencies import Dependencies
from mandate_svc.service_layer.mandates import expire_unsigned, utcnow
from mandate_svc.settings import Settings

log = get_logger(__name__)


def expiry_loop(
    runtime: Runtime[Settings], clock: Callable[[], datetime] = utcnow
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    settings = runtime.settings
    after = timedelta(days=settings.invite_expiry_days)

    async def sweep() -> None:
        async with runtime.uow() as uow:
            count = await expire_unsigned(uow, clock(), after)
            await uow.commit()
        if count:
            log.info("mandate.invites_expired", count=count)

    async def run(stop: asyncio.Event) -> None:
        # The database down: the failure is logged and the next sweep tries again.
        await periodic("mandate.expiry_sweep", settings.expiry_sweep_seconds, sweep, stop)

    return run


def loops(
    runtime: Runtime[Settings], deps: Dependencies
) -> Sequence[Callable[[asyncio.Event], Coroutine[Any, Any, None]]]:
    return [expiry_loop(runtime)]
