"""The delivery worker: claims due deliveries and sends them, each as its own task.

No endpoint can slow another:
- at most ``per_endpoint`` deliveries of one endpoint are in flight (in this process), and the
  claim never takes more than that, so a dead endpoint's backlog stays in the database instead of
  occupying the worker;
- every attempt has one deadline (connect + answer), and every endpoint has its own connection
  pool, so a slow endpoint's sockets are not the others' sockets; no database session is held
  while a request is out;
- two budgets: the main one (``delivery_max_in_flight``) for attempts that are answered
  promptly, and the slow one (``delivery_max_slow_in_flight``) that an attempt moves to when it is
  still unanswered after ``delivery_slow_after_seconds``, and that probes start in; hanging
  endpoints hold main slots for seconds, not for the whole deadline (as long as the slow budget
  has room: it bounds the sockets a worker keeps open);
- an endpoint whose attempts keep failing is paused by its circuit breaker (``domain.breaker``)
  and then probed one delivery at a time, so a dead endpoint gets few attempts;
- name resolution runs on the worker's own threads, one look-up per host at a time
  (``adapters.network.SharedLookups``);
- a finished delivery wakes the claim loop at once, and so does a commit that queued deliveries
  (``NOTIFY``); otherwise the loop polls.
Several workers (replicas) claim with ``FOR UPDATE SKIP LOCKED``; the in-flight limits and the
breakers are per worker.
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

import httpx

from koppel_shared.db import asyncpg_dsn
from koppel_shared.logging import get_logger, log_context
from koppel_shared.loops import Backoff, woken
from koppel_shared.service import Runtime
from notify_svc.adapters.network import (
    Resolver,
    SendResult,
    SharedLookups,
    make_delivery_client,
    send_checked,
)
from notify_svc.domain.breaker import Breaker, State
from notify_svc.domain.delivery import Outcome, classify
from notify_svc.domain.signing import webhook_headers
from notify_svc.domain.urls import UrlRefused, parse_url
from notify_svc.service_layer.deliveries import AttemptResult, Claimed, claim_due, record_attempts
from notify_svc.service_layer.ingest import WAKE_CHANNEL
from notify_svc.settings import Settings

log = get_logger(__name__)

MAX_CLIENTS = 512


class Dispatcher:
    def __init__(self, runtime: Runtime[Settings], resolver: Resolver | None = None) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.settings = settings
        self._lookups = None if resolver else SharedLookups(settings.delivery_dns_threads)
        self.resolve: Resolver = resolver or self._lookups  # type: ignore[assignment]
        self.policy = settings.url_policy
        self.in_flight: dict[uuid.UUID, int] = defaultdict(int)
        self.total = 0  # attempts in flight on the main budget
        self.slow = 0  # on the slow budget: probes, and attempts left unanswered for a while
        self.breakers: dict[uuid.UUID, Breaker] = {}
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
        s = self.settings
        now = time.monotonic()
        paused: list[uuid.UUID] = []
        probe_due: list[uuid.UUID] = []
        for endpoint_id, breaker in list(self.breakers.items()):
            state = breaker.state(now)
            if state is State.CLOSED:
                continue
            paused.append(endpoint_id)
            if state is State.PROBE_DUE and not self.in_flight.get(endpoint_id):
                probe_due.append(endpoint_id)
        started = 0
        room = s.delivery_max_in_flight - self.total
        if room > 0:
            async with self.runtime.uow() as uow:
                claimed = await claim_due(
                    uow,
                    limit=min(room, s.delivery_claim_batch),
                    per_endpoint=s.delivery_max_in_flight_per_endpoint,
                    busy={k: v for k, v in self.in_flight.items() if v},
                    skip=paused,
                    lease_seconds=s.delivery_lease_seconds,
                )
            for c in claimed:
                self._start(c, probe=False)
            started += len(claimed)
        probe_due = probe_due[: max(0, s.delivery_max_slow_in_flight - self.slow)]
        if probe_due:
            async with self.runtime.uow() as uow:
                claimed = await claim_due(
                    uow,
                    limit=len(probe_due),
                    per_endpoint=1,
                    busy={},
                    only=probe_due,
                    lease_seconds=s.delivery_lease_seconds,
                )
            for c in claimed:
                self.breakers[c.endpoint_id].probe_started()
                self._start(c, probe=True)
            started += len(claimed)
            self._nothing_to_probe(set(probe_due) - {c.endpoint_id for c in claimed}, now)
        return started

    def _nothing_to_probe(self, endpoint_ids: set[uuid.UUID], now: float) -> None:
        for endpoint_id in endpoint_ids:
            breaker = self.breakers[endpoint_id]
            if breaker.forgotten(now):
                del self.breakers[endpoint_id]
            else:
                breaker.nothing_to_probe(now)

    def _start(self, claimed: Claimed, probe: bool) -> None:
        self.in_flight[claimed.endpoint_id] += 1
        if probe:
            self.slow += 1
        else:
            self.total += 1
        self._spawn(self._deliver(claimed, probe))

    def _count_outcome(self, endpoint_id: uuid.UUID, succeeded: bool, started: float, probe: bool) -> None:
        """Tell the endpoint's breaker (in the process, at once: the next claim already knows)."""
        if succeeded:
            self.breakers.pop(endpoint_id, None)
            return
        breaker = self.breakers.get(endpoint_id)
        if breaker is None:
            breaker = self.breakers[endpoint_id] = Breaker(self.settings.breaker_policy)
        breaker.failed(time.monotonic(), started, probe=probe)

    async def _deliver(self, claimed: Claimed, probe: bool = False) -> None:
        succeeded = False
        on_slow = probe  # which budget the attempt counts against
        with log_context(tenant_id=claimed.tenant_id, endpoint_id=claimed.endpoint_id, delivery_id=claimed.id):
            started_at, began = datetime.now(UTC), time.monotonic()
            sending = asyncio.ensure_future(self._send(claimed))
            try:
                if not probe:
                    done, _ = await asyncio.wait({sending}, timeout=self.settings.delivery_slow_after_seconds)
                    if not done and self.slow < self.settings.delivery_max_slow_in_flight:
                        # Unanswered for a while: wait on the slow budget; a main slot is free.
                        self.total -= 1
                        self.slow += 1
                        on_slow = True
                        self._wake.set()
                result = await sending
                succeeded = classify(result.status_code) is Outcome.SUCCEEDED
                attempt = AttemptResult(started_at, result.status_code, result.latency_ms, result.error, result.excerpt)
                self._results.put_nowait((claimed, attempt))
            except Exception as exc:  # the lease runs out and the delivery is tried again
                log.warning("notify.delivery_error", error=repr(exc)[:500])
            finally:
                sending.cancel()  # does something only when this task is cancelled (shutdown)
                # The endpoint's slot is free as soon as its HTTP exchange is over; the result is
                # written by the recorder (the lease keeps the delivery from being claimed again).
                self._count_outcome(claimed.endpoint_id, succeeded, began, probe)
                self.in_flight[claimed.endpoint_id] -= 1
                if not self.in_flight[claimed.endpoint_id]:
                    del self.in_flight[claimed.endpoint_id]
                if on_slow:
                    self.slow -= 1
                else:
                    self.total -= 1
                self._wake.set()

    async def record_pending(self, limit: int = 500, first: tuple[Claimed, AttemptResult] | None = None) -> int:
        """Write the finished attempts waiting in the queue, in one transaction."""
        batch: list[tuple[Claimed, AttemptResult]] = [first] if first else []
        while len(batch) < limit and not self._results.empty():
            batch.append(self._results.get_nowait())
        if not batch:
            return 0
        try:
            await self._write(batch)
        except Exception as exc:
            log.warning("notify.record_error", count=len(batch), error=repr(exc)[:500])
            if len(batch) == 1:
                return 0  # its lease runs out and it is delivered again
            # One bad row (or a deadlock with another worker) must not cost the others their
            # record: try them one by one.
            written = 0
            for item in batch:
                with contextlib.suppress(Exception):
                    await self._write([item])
                    written += 1
            self.delivered += written
            return written
        self.delivered += len(batch)
        return len(batch)

    async def _write(self, batch: list[tuple[Claimed, AttemptResult]]) -> None:
        s = self.settings
        async with self.runtime.uow() as uow:
            await record_attempts(
                uow,
                batch,
                schedule=s.delivery_schedule_seconds,
                jitter=s.delivery_jitter,
                policy=s.disable_policy,
            )

    async def _recorder(self, stop: asyncio.Event) -> None:
        # Not a koppel_shared.loops loop: it waits on the results queue, not on time or NOTIFY,
        # and it must outlive ``stop`` until the queue is empty (record_pending never raises).
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
        recorder = asyncio.create_task(self._recorder(stop))

        async def claim() -> bool:
            # Something started and the main budget has room: there may be more due right now.
            # Otherwise sleep until an attempt ends (it sets the wake event), a commit queues
            # deliveries (NOTIFY), a pause ends (at most the poll interval away) or the poll
            # interval is over. The database away: the claim fails and is tried after a backoff.
            started = await self.claim_once()
            return bool(started) and self.total < self.settings.delivery_max_in_flight

        try:
            await woken(
                "notify.dispatcher",
                WAKE_CHANNEL,
                claim,
                stop,
                dsn=asyncpg_dsn(self.settings.database_url),
                poll=self.settings.delivery_poll_seconds,
                backoff=Backoff(first=0.2, cap=5.0),
                wake=self._wake,
            )
        finally:
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
        if self._lookups is not None:
            self._lookups.close()
