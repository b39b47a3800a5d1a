"""The worker's background loops: the booker (continuous) and the nightly sweep."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from bookkeeping_svc.service_layer.booker import Booker, sweep
from bookkeeping_svc.service_layer.gateway import gateway
from bookkeeping_svc.settings import Settings
from koppel_shared.logging import get_logger
from koppel_shared.service import Loop, Runtime

log = get_logger(__name__)


def loops(runtime: Runtime) -> Sequence[Loop]:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    booker = Booker(runtime, gateway(runtime), settings)
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

    return [booker.run, sweeper]
