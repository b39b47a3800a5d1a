"""Storing received webhooks with application-level group commit.

A commit costs one WAL flush (~4 ms on this class of disk); one commit per webhook would cap the
endpoint at a few hundred per second per connection. Requests therefore hand their row to a
``BatchWriter`` and wait: a few flush tasks write whatever is queued in one multi-row INSERT and
one commit, then wake every waiting request. Each webhook is still durably stored before its
answer; at low load a batch is a single row and adds no delay (no timer), under load batches
grow by themselves while the previous flush is on disk.

A flush task keeps its pooled connection while there is work: taking one from the pool per batch
costs a round trip more per batch (the pool's reset query on release), and that round trip used
to come before the waiting requests were woken.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from koppel_shared.logging import get_logger

log = get_logger(__name__)

_INSERT = (
    "INSERT INTO received_webhooks (tenant_id, query, type, event, mandate_number)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])"
)
_INSERT_AND_NOTIFY = (
    f"WITH stored AS ({_INSERT} RETURNING 1)"
    " SELECT pg_notify($6, tenant) FROM unnest($7::text[]) AS tenant, (SELECT count(*) FROM stored) AS n"
)


@dataclass(frozen=True)
class WebhookRow:
    tenant_id: uuid.UUID
    query: str
    type: str | None
    event: str | None
    mandate_number: str | None


class BatchWriter:
    def __init__(self, pool: Any, notify_channel: str, max_batch: int = 500, flushers: int = 4) -> None:
        self._pool = pool
        self._channel = notify_channel
        self._max_batch = max_batch
        self._flushers = flushers
        self._queue: list[tuple[WebhookRow, bool, asyncio.Future[None]]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()  # strong references while they run

    async def store(self, row: WebhookRow, notify: bool) -> None:
        """Return once the row is committed (raise if the write failed)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((row, notify, future))
        if self._running < self._flushers:
            self._running += 1
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await future

    async def _flush(self) -> None:
        try:
            while self._queue:
                await self._flush_on_one_connection()
        finally:
            self._running -= 1

    async def _flush_on_one_connection(self) -> None:
        batch: list[tuple[WebhookRow, bool, asyncio.Future[None]]] = []
        try:
            async with self._pool.acquire() as conn:
                while self._queue:
                    batch = self._take()
                    await self._write(conn, batch)
                    _settle(batch, None)
                    batch = []
        except Exception as exc:  # the database is down or the write failed: those requests fail
            batch = batch or self._take()
            log.error("webhook.store_failed", rows=len(batch), error=repr(exc))
            _settle(batch, exc)

    def _take(self) -> list[tuple[WebhookRow, bool, asyncio.Future[None]]]:
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        return batch

    async def _write(self, conn: Any, batch: list[tuple[WebhookRow, bool, asyncio.Future[None]]]) -> None:
        rows = [r for r, _, _ in batch]
        notify = sorted({str(r.tenant_id) for r, n, _ in batch if n})
        columns = (
            [r.tenant_id for r in rows],
            [r.query for r in rows],
            [r.type for r in rows],
            [r.event for r in rows],
            [r.mandate_number for r in rows],
        )
        # One statement = one round trip and one commit; the NOTIFY rides in the same
        # transaction, so it is delivered only once the rows are visible to the worker.
        if notify:
            await conn.execute(_INSERT_AND_NOTIFY, *columns, self._channel, notify)
        else:
            await conn.execute(_INSERT, *columns)


def _settle(batch: list[tuple[WebhookRow, bool, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, _, future in batch:
        if future.done():  # the request went away (client disconnected, cancelled)
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
