"""The worker's drain loop: wakes on NOTIFY (from the webhook endpoint or a feed reset), or every
``drain_poll_seconds``, drains the tenants with pending requests, and every
``safety_net_drain_seconds`` drains every connected tenant in case webhooks were lost."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence

from koppel_shared.db import asyncpg_dsn
from koppel_shared.loops import woken
from koppel_shared.service import Loop, Runtime
from sync_svc.service_layer import connections, drain_requests
from sync_svc.service_layer.drain_requests import Pending
from sync_svc.service_layer.feeds import drain_tenant
from sync_svc.service_layer.resources import DRAIN_CHANNEL, Resources
from sync_svc.settings import Settings


class DrainLoop:
    def __init__(self, runtime: Runtime[Settings], resources: Resources) -> None:
        self.runtime = runtime
        self.resources = resources
        settings = runtime.settings
        self.settings = settings
        self.wake = asyncio.Event()
        self._backoff: dict[uuid.UUID, tuple[float, float]] = {}  # tenant -> (not before, delay)
        self._last_start: dict[uuid.UUID, float] = {}
        self._deferred_until: float | None = None  # earliest moment a deferred tenant is due
        self._next_safety_net = time.monotonic() + settings.safety_net_drain_seconds

    async def run(self, stop: asyncio.Event) -> None:
        # A cycle that drained something looks again before sleeping; the database down, the
        # cycle fails and is tried again after a backoff.
        await woken(
            "sync.drain",
            DRAIN_CHANNEL,
            self.cycle,
            stop,
            dsn=asyncpg_dsn(self.settings.database_url),
            poll=self._sleep,
            wake=self.wake,
        )

    def _sleep(self) -> float:
        """The poll interval, or less when a deferred tenant falls due sooner."""
        sleep = self.settings.drain_poll_seconds
        if self._deferred_until is not None:
            sleep = min(sleep, max(0.0, self._deferred_until - time.monotonic()))
        return sleep

    async def cycle(self) -> bool:
        async with self.runtime.uow() as uow:
            requests = await drain_requests.pending(uow)
            if time.monotonic() >= self._next_safety_net:
                self._next_safety_net = time.monotonic() + self.settings.safety_net_drain_seconds
                known = {r.tenant_id for r in requests}
                requests += [Pending(t, None, None) for t in await connections.connected_tenants(uow) if t not in known]
        now = time.monotonic()
        due, self._deferred_until = due_now(requests, now, self._not_before)
        if not due:
            return False
        for r in due:
            self._last_start[r.tenant_id] = now
        gate = asyncio.Semaphore(self.settings.drain_concurrency)

        async def one(request: Pending) -> bool:
            async with gate:
                return await self.drain(request)

        results = await asyncio.gather(*(one(r) for r in due))
        return any(results)

    def _not_before(self, tenant_id: uuid.UUID) -> float:
        """After a failure: its backoff; after any drain: the minimum interval since it began."""
        backoff = self._backoff.get(tenant_id, (0.0, 0.0))[0]
        last = self._last_start.get(tenant_id)
        return backoff if last is None else max(backoff, last + self.settings.drain_min_interval_seconds)

    async def drain(self, request: Pending) -> bool:
        result = await drain_tenant(self.runtime, self.resources, request.tenant_id)
        if result.ok:
            self._backoff.pop(request.tenant_id, None)
            async with self.runtime.uow() as uow:
                await drain_requests.settle(uow, request)
                await uow.commit()
            return True
        # Twikey down, or another replica holds the tenant: try again later, backing off.
        _, delay = self._backoff.get(request.tenant_id, (0.0, 0.0))
        delay = min(max(delay * 2, self.settings.drain_poll_seconds), 60.0)
        self._backoff[request.tenant_id] = (time.monotonic() + delay, delay)
        return False


def due_now(
    requests: list[Pending], now: float, not_before: Callable[[uuid.UUID], float]
) -> tuple[list[Pending], float | None]:
    """The requests whose tenant may be drained at ``now``, and the earliest moment one of the
    others may (None: nothing is waiting)."""
    due = [r for r in requests if not_before(r.tenant_id) <= now]
    later = [not_before(r.tenant_id) for r in requests if r not in due]
    return due, min(later, default=None)


def loops(runtime: Runtime[Settings], resources: Resources) -> Sequence[Loop]:
    return [DrainLoop(runtime, resources).run]
