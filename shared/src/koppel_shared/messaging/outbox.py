"""Transactional outbox: events are rows written in the state change's transaction; a relay
publishes them.

The relay claims unsent rows with ``FOR UPDATE SKIP LOCKED`` and holds the lock while it
publishes, so several relay replicas never publish one row twice at the same time; it marks a row
sent only after the broker confirmed it. A crash between confirm and commit republishes the row —
at-least-once, which the consumers' inbox turns into exactly-once effects.
It wakes on ``NOTIFY`` (sent in the writing transaction, so delivered only on commit) and also
polls, in case a notification is missed while its listening connection was down.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from koppel_shared.events.envelope import Envelope
from koppel_shared.logging import get_logger
from koppel_shared.messaging.broker import Broker, build_message
from koppel_shared.messaging.tables import outbox
from koppel_shared.metrics import OUTBOX_PUBLISH_ERRORS, OUTBOX_PUBLISHED

log = get_logger(__name__)

NOTIFY_CHANNEL = "koppel_outbox"


async def add_to_outbox(session: AsyncSession, *events: Envelope) -> None:
    """Write events in the session's transaction. A repeated event id is a no-op, which makes
    deterministic ids (derived from an external identity) safe to emit again."""
    if not events:
        return
    rows = [
        {
            "id": e.id,
            "type": e.type,
            "tenant_id": e.tenant_id,
            "body": e.model_dump_json(),
            "correlation_id": e.correlation_id,
            "occurred_at": e.occurred_at,
        }
        for e in events
    ]
    await session.execute(_INSERT, rows)
    await session.execute(_NOTIFY)


# Built once: SQLAlchemy caches their compiled form, which matters at thousands of events a second.
_INSERT = insert(outbox).on_conflict_do_nothing(index_elements=["id"])
_NOTIFY = sa.text(f"NOTIFY {NOTIFY_CHANNEL}")  # delivered only when the transaction commits
_CLAIM = sa.text(
    "SELECT seq, id, type, tenant_id, correlation_id, occurred_at, body FROM outbox"
    " WHERE sent_at IS NULL ORDER BY seq LIMIT :n FOR UPDATE SKIP LOCKED"
)


class OutboxRelay:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        broker: Broker,
        dsn: str,
        batch_size: int = 200,
        poll_seconds: float = 2.0,
        retention: timedelta = timedelta(days=7),
    ) -> None:
        self._sf = session_factory
        self._broker = broker
        self._dsn = dsn
        self._batch = batch_size
        self._poll = poll_seconds
        self._retention = retention
        self._wake = asyncio.Event()
        self.published = 0

    async def relay_batch(self) -> int:
        """Publish one batch of unsent rows; returns how many rows were claimed."""
        async with self._sf() as session, session.begin():
            rows = (await session.execute(_CLAIM, {"n": self._batch})).all()
            if not rows:
                return 0
            exchange = self._broker.exchange
            results = await asyncio.gather(
                *(
                    exchange.publish(
                        build_message(
                            r.body.encode(),
                            event_id=r.id,
                            type=r.type,
                            tenant_id=r.tenant_id,
                            correlation_id=r.correlation_id,
                            occurred_at=r.occurred_at,
                        ),
                        routing_key=r.type,
                        mandatory=True,
                    )
                    for r in rows
                ),
                return_exceptions=True,
            )
            sent = [r.seq for r, res in zip(rows, results, strict=True) if not isinstance(res, BaseException)]
            failed = [(r.seq, res) for r, res in zip(rows, results, strict=True) if isinstance(res, BaseException)]
            if sent:
                await session.execute(sa.update(outbox).where(outbox.c.seq.in_(sent)).values(sent_at=sa.func.now()))
            if failed:
                error = repr(failed[0][1])[:500]
                await session.execute(
                    sa.update(outbox)
                    .where(outbox.c.seq.in_([seq for seq, _ in failed]))
                    .values(attempts=outbox.c.attempts + 1, last_error=error)
                )
                OUTBOX_PUBLISH_ERRORS.inc(len(failed))
                log.warning("outbox.publish_failed", count=len(failed), error=error)
        self.published += len(sent)
        OUTBOX_PUBLISHED.inc(len(sent))
        if failed:
            raise PublishFailed(f"{len(failed)} of {len(rows)} events not confirmed")
        return len(rows)

    async def purge_sent(self) -> int:
        async with self._sf() as session, session.begin():
            result = await session.execute(
                sa.delete(outbox).where(
                    outbox.c.sent_at.is_not(None),
                    outbox.c.sent_at < sa.func.now() - self._retention,
                )
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop))
        backoff = 0.2
        try:
            while not stop.is_set():
                # Clear before claiming: a commit notified while this batch runs must wake the next.
                self._wake.clear()
                try:
                    claimed = await self.relay_batch()
                    backoff = 0.2
                except Exception as exc:  # broker or database down: rows stay, try again
                    log.warning("outbox.relay_error", error=repr(exc))
                    await _sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                if claimed >= self._batch:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(self._wake.wait(), stop.wait()), timeout=self._poll)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self, stop: asyncio.Event) -> None:
        """Keep a LISTEN connection open; on every (re)connect wake the relay once, since
        notifications sent while it was down are lost."""
        while not stop.is_set():
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda *_, lost=lost: lost.set())
                await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
                self._wake.set()
                await _first(lost.wait(), stop.wait())
            except Exception as exc:
                log.warning("outbox.listen_error", error=repr(exc))
                await _sleep_or_stop(stop, 1.0)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)


class PublishFailed(Exception):
    pass


async def _first(*aws: Any) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
