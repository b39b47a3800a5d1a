"""The delivery worker: claims due deliveries and sends them, each as its own task.

No endpoint can slow another:
- at most ``per_endpoint`` deliveries of one endpoint are in flight (in this process), and the
  claim never takes more than that, so a dead endpoint's backlog stays in the database instead of
  occupying the worker;
- every attempt has one deadline (connect + answer), and every endpoint has its own connection
  pool, so a slow endpoint's sockets are not the others' sockets;
- a finished delivery wakes the claim loop at once, and so does a commit that queued deliveries
  (``NOTIFY``); otherwise the loop polls.
Several workers (replicas) claim with ``FOR UPDATE SKIP LOCKED``; the in-flight limit per
endpoint is per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import uuid
from collections import OrderedDict, defaultdict
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from koppel_shared.db import asyncpg_dsn
from koppel_shared.logging import get_logger, log_context
from koppel_shared.service import Runtime
from notify_svc.adapters.network import Resolver, SendResult, make_delivery_client, send_checked, system_resolver
from notify_svc.domain.signing import webhook_headers
from notify_svc.domain.urls import UrlRefused, parse_url
from notify_svc.service_layer.deliveries import AttemptResult, Claimed, claim_due, record_attempts
from notify_svc.service_layer.ingest import WAKE_CHANNEL
from notify_svc.settings import Settings

log = get_logger(__name__)

MAX_CLIENTS = 512


class Dispatcher:
    def __init__(self, runtime: Runtime, resolver: Resolver | None = None) -> None:
        self.runtime = runtime
        settings = runtime.settings
        assert isinstance(settings, Settings)
        self.settings = settings
        self.resolve = resolver or system_resolver
        self.policy = settings.url_policy
        self.in_flight: dict[uuid.UUID, int] = defaultdict(int)
        self.total = 0
        self._slots = asyncio.Semaphore(settings.delivery_max_in_flight)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._clients: OrderedDict[uuid.UUID, httpx.AsyncClient] = OrderedDict()
        self.delivered = 0
        self._tls = ssl.create_default_context()
        self._results: asyncio.Queue[tuple[Claimed, AttemptResult]] = asyncio.Queue()

    def wake(self) -> None:
        self._wake.set()

    def _client(self, endpoint_id: uuid.UUID) -> httpx.AsyncClient:
        client = self._clients.get(endpoint_id)
        if client is None:
            s = self.settings
            client = make_delivery_client(
                s.delivery_timeout_seconds,
                s.delivery_connect_timeout_seconds,
                s.delivery_max_in_flight_per_endpoint,
                self._tls,
            )
            self._clients[endpoint_id] = client
            while len(self._clients) > MAX_CLIENTS:
                old_id, old = next(iter(self._clients.items()))
                if self.in_flight.get(old_id):
                    break
                self._clients.pop(old_id)
                self._spawn(old.aclose())
        self._clients.move_to_end(endpoint_id)
        return client

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def claim_once(self) -> int:
        """Claim what may start now and start it; returns how many were started."""
        room = self.settings.delivery_max_in_flight - self.total
        if room <= 0:
            return 0
        async with self.runtime.uow() as uow:
            claimed = await claim_due(
                uow,
                limit=min(room, self.settings.delivery_claim_batch),
                per_endpoint=self.settings.delivery_max_in_flight_per_endpoint,
                busy={k: v for k, v in self.in_flight.items() if v},
                lease_seconds=self.settings.delivery_lease_seconds,
            )
        for c in claimed:
            self.in_flight[c.endpoint_id] += 1
            self.total += 1
            self._spawn(self._deliver(c))
        return len(claimed)

    async def _deliver(self, claimed: Claimed) -> None:
        with log_context(tenant_id=claimed.tenant_id, endpoint_id=claimed.endpoint_id, delivery_id=claimed.id):
            try:
                started_at = datetime.now(UTC)
                result = await self._send(claimed)
                attempt = AttemptResult(started_at, result.status_code, result.latency_ms, result.error, result.excerpt)
                self._results.put_nowait((claimed, attempt))
            except Exception as exc:  # the lease runs out and the delivery is tried again
                log.warning("notify.delivery_error", error=repr(exc)[:500])
            finally:
                # The endpoint's slot is free as soon as its HTTP exchange is over; the result is
                # written by the recorder (the lease keeps the delivery from being claimed again).
                self.in_flight[claimed.endpoint_id] -= 1
                if not self.in_flight[claimed.endpoint_id]:
                    del self.in_flight[claimed.endpoint_id]
                self.total -= 1
                self._wake.set()

    async def record_pending(self, limit: int = 500, first: tuple[Claimed, AttemptResult] | None = None) -> int:
        """Write the finished attempts waiting in the queue, in one transaction."""
        batch: list[tuple[Claimed, AttemptResult]] = [first] if first else []
        while len(batch) < limit and not self._results.empty():
            batch.append(self._results.get_nowait())
        if not batch:
            return 0
        s = self.settings
        try:
            async with self.runtime.uow() as uow:
                await record_attempts(
                    uow,
                    batch,
                    schedule=s.delivery_schedule_seconds,
                    jitter=s.delivery_jitter,
                    policy=s.disable_policy,
                )
        except Exception as exc:  # their leases run out and they are delivered again
            log.warning("notify.record_error", count=len(batch), error=repr(exc)[:500])
            return 0
        self.delivered += len(batch)
        return len(batch)

    async def _recorder(self, stop: asyncio.Event) -> None:
        while True:
            await self.record_pending(first=await self._results.get())
            if stop.is_set() and self._results.empty():
                return

    async def _send(self, claimed: Claimed) -> SendResult:
        s = self.settings
        try:
            target = parse_url(claimed.url, self.policy)
        except UrlRefused as exc:
            return SendResult(None, 0, f"refused: {exc}")
        box = self.runtime.secrets
        secrets = [box.decrypt(claimed.secret)]
        if claimed.previous_secret:
            secrets.append(box.decrypt(claimed.previous_secret))
        body = claimed.payload.encode()
        headers = webhook_headers(secrets, str(claimed.event_id), int(time.time()), body)
        total = s.delivery_timeout_seconds + s.delivery_connect_timeout_seconds
        return await send_checked(
            self._client(claimed.endpoint_id), target, self.policy, self.resolve, headers, body, total
        )

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop))
        recorder = asyncio.create_task(self._recorder(stop))
        backoff = 0.2
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    started = await self.claim_once()
                    backoff = 0.2
                except Exception as exc:  # database away: try again
                    log.warning("notify.claim_error", error=repr(exc)[:500])
                    await _sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if started and self.total < self.settings.delivery_max_in_flight:
                    continue  # there may be more due right now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(self._wake.wait(), stop.wait()), self.settings.delivery_poll_seconds)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self.drain()
            recorder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recorder
            await self.record_pending(limit=100_000)

    async def drain(self, grace: float = 5.0) -> None:
        """Let running deliveries finish (what does not finish is claimed again after its lease)."""
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for t in pending:
                t.cancel()
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        self._clients.clear()

    async def _listen(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            conn: Any = None
            try:
                conn = await asyncpg.connect(asyncpg_dsn(self.settings.database_url))
                await conn.add_listener(WAKE_CHANNEL, lambda *_: self._wake.set())
                self._wake.set()
                await stop.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("notify.listen_error", error=repr(exc)[:300])
                await _sleep_or_stop(stop, 2.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()


async def _first(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
