"""Transactional outbox: events are rows written in the state change's transaction; a relay
publishes them.

The relay claims unsent rows with ``FOR UPDATE SKIP LOCKED`` and holds the lock while it
publishes, so several relay replicas never publish one row twice at the same time; a row's mark
"sent" commits only after the broker confirmed it (the claim marks the rows in the same statement,
and the rows the broker did not confirm are unmarked again before the commit). A crash between
confirm and commit republishes the row — at-least-once, which the consumers' inbox turns into
exactly-once effects.
It wakes on ``NOTIFY`` (sent in the writing transaction, so delivered only on commit) and also
polls, in case a notification is missed while its listening connection was down.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from koppel_shared.events.envelope import Envelope
from koppel_shared.logging import get_logger
from koppel_shared.loops import Backoff, woken
from koppel_shared.messaging.broker import Broker, message_properties
from koppel_shared.messaging.longlived import freeze_long_lived
from koppel_shared.messaging.tables import outbox
from koppel_shared.metrics import OUTBOX_PUBLISH_ERRORS, OUTBOX_PUBLISHED

log = get_logger(__name__)

NOTIFY_CHANNEL = "koppel_outbox"


async def add_to_outbox(session: AsyncSession, *events: Envelope) -> None:
    """Write events in the session's transaction. A repeated event id is a no-op, which makes
    deterministic ids (derived from an external identity) safe to emit again."""
    if not events:
        return
    await session.execute(
        _INSERT_AND_NOTIFY,
        {
            "ids": [e.id for e in events],
            "types": [e.type for e in events],
            "tenants": [e.tenant_id for e in events],
            "bodies": [e.model_dump_json() for e in events],
            "correlations": [e.correlation_id for e in events],
            "occurred": [e.occurred_at for e in events],
        },
    )


# One statement, one round trip, whatever the number of events: the rows as arrays, and the
# NOTIFY riding along (pg_notify, like NOTIFY, is delivered only when the transaction commits).
_INSERT_AND_NOTIFY = sa.text(
    "WITH written AS ("
    " INSERT INTO outbox (id, type, tenant_id, body, correlation_id, occurred_at)"
    " SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[]), CAST(:tenants AS uuid[]),"
    " CAST(:bodies AS text[]), CAST(:correlations AS text[]), CAST(:occurred AS timestamptz[]))"
    " ON CONFLICT (id) DO NOTHING)"
    f" SELECT pg_notify('{NOTIFY_CHANNEL}', '')"
)
# Claim and mark in one statement (one round trip); the mark is seen by others only on commit.
# RETURNING does not keep the subquery's order, hence the sort by seq after it.
_CLAIM_AND_MARK = sa.text(
    "UPDATE outbox SET sent_at = now() WHERE seq IN ("
    " SELECT seq FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT :n FOR UPDATE SKIP LOCKED)"
    " RETURNING seq, id, type, tenant_id, correlation_id, occurred_at, body"
)
# One array parameter rather than an IN list: one statement text whatever the batch size.
_UNMARK_FAILED = sa.text(
    "UPDATE outbox SET sent_at = NULL, attempts = attempts + 1, last_error = :error"
    " WHERE seq = ANY(CAST(:seqs AS bigint[]))"
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
            rows = sorted((await session.execute(_CLAIM_AND_MARK, {"n": self._batch})).all(), key=lambda r: r.seq)
            if not rows:
                return 0
            results = await self._broker.publish_many(
                [
                    (
                        r.type,
                        r.body.encode(),
                        message_properties(
                            event_id=r.id,
                            type=r.type,
                            tenant_id=r.tenant_id,
                            correlation_id=r.correlation_id,
                            occurred_at=r.occurred_at,
                        ),
                    )
                    for r in rows
                ]
            )
            failed = [(r.seq, error) for r, error in zip(rows, results, strict=True) if error is not None]
            if failed:
                error = repr(failed[0][1])[:500]
                await session.execute(_UNMARK_FAILED, {"seqs": [seq for seq, _ in failed], "error": error})
                OUTBOX_PUBLISH_ERRORS.inc(len(failed))
                log.warning("outbox.publish_failed", count=len(failed), error=error)
        sent = len(rows) - len(failed)
        self.published += sent
        OUTBOX_PUBLISHED.inc(sent)
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
        freeze_long_lived()

        async def publish() -> bool:
            # A full batch: more rows may be waiting, claim again at once. A failure (broker or
            # database down) leaves the rows unsent; the loop backs off and tries again.
            return await self.relay_batch() >= self._batch

        await woken(
            "outbox.relay",
            NOTIFY_CHANNEL,
            publish,
            stop,
            dsn=self._dsn,
            poll=self._poll,
            backoff=Backoff(first=0.2, cap=5.0),
            wake=self._wake,
        )


class PublishFailed(Exception):
    pass
