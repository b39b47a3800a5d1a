"""Idempotent consumer (inbox): a handler's effect and the record "(consumer, event id) is done"
commit in one transaction; the message is acked only after that commit.

- a redelivered event finds its inbox row and is acked without a second effect;
- a handler error sends a copy to the delayed-retry queue for this attempt (TTL, then back to the
  work queue) and, after the last attempt, to the service's dead-letter queue with the reason;
- a message that cannot be decoded (bad JSON, unknown type, unsupported version, invalid data)
  goes straight to the dead-letter queue: retrying cannot help it.

The consumer is the CPU-bound end of the event path, so the per-message work is kept small: one
inbox statement per batch, metrics counted per batch, acks batched (``acks.AckTracker``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import sqlalchemy as sa
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from koppel_shared.db import UnitOfWork
from koppel_shared.events.envelope import Envelope
from koppel_shared.events.registry import EventData, UnknownEventType, UnsupportedEventVersion, decode_data
from koppel_shared.logging import get_logger
from koppel_shared.messaging.acks import AckTracker
from koppel_shared.messaging.broker import Broker
from koppel_shared.messaging.longlived import freeze_long_lived
from koppel_shared.messaging.tables import inbox
from koppel_shared.messaging.topology import QueueSpec, declare_exchange, declare_work_queue
from koppel_shared.metrics import EVENTS_HANDLED, HANDLE_LATENCY

log = get_logger(__name__)

ATTEMPT_HEADER = "x-koppel-attempt"
Handler = Callable[[Envelope, Any, UnitOfWork], Awaitable[None]]


def header_int(headers: Any, name: str, default: int) -> int:
    value = (headers or {}).get(name)
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else default


class Undecodable(Exception):
    pass


@dataclass(frozen=True)
class Attempt:
    """Which try at an event a handler runs in. ``number`` counts from 1, one more for each pass
    through the delayed-retry queue (a replayed dead letter starts again at 1); ``last``: if the
    handler raises now, the event is dead-lettered instead of retried."""

    number: int
    last: bool


_FIRST = Attempt(1, last=False)
_ATTEMPT: ContextVar[Attempt | None] = ContextVar("koppel_attempt", default=None)


def current_attempt() -> Attempt:
    """The try at the event being handled. For a handler that answers for a command to another
    service: on its last try it reports the failure as an event (the sender is waiting for an
    answer) instead of raising into the dead-letter queue. Outside a consumer: the first, not last."""
    return _ATTEMPT.get() or _FIRST


@dataclass
class ConsumerSpec:
    """What one queue of a service handles: ``handlers`` maps event type → handler.

    ``workers``: batches handled at once. Two suit handlers that only touch the database: each
    batch collects what arrived while the other was committing, so batches grow with the load
    and the cost per event falls (one worker leaves the CPU idle during round trips; four split
    the arrivals into small batches, measured in bench/outbox_inbox.py). Handlers that wait on
    a remote service want more."""

    purpose: str
    bindings: tuple[str, ...]
    handlers: dict[str, Handler]
    workers: int = 2


async def record_in_inbox(session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
    """True the first time (consumer, event id) is seen; False for a duplicate."""
    result = await session.execute(
        _RECORD, {"consumer": consumer, "event_id": envelope.id, "event_type": envelope.type}
    )
    return result.first() is not None


async def record_many_in_inbox(session: AsyncSession, consumer: str, envelopes: list[Envelope]) -> set[uuid.UUID]:
    """The ids among ``envelopes`` not seen before by ``consumer`` (now recorded). An id given
    twice is recorded once."""
    result = await session.execute(
        _RECORD_MANY,
        {"consumer": consumer, "ids": [e.id for e in envelopes], "types": [e.type for e in envelopes]},
    )
    return {row[0] for row in result}


_RECORD = insert(inbox).on_conflict_do_nothing().returning(inbox.c.event_id)
# Arrays instead of a VALUES row per event: the statement text is the same for every batch size,
# so it is compiled and prepared once instead of once per size.
_RECORD_MANY = sa.text(
    "INSERT INTO inbox (consumer, event_id, event_type)"
    " SELECT :consumer, t.id, t.type FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[])) AS t(id, type)"
    " ON CONFLICT DO NOTHING RETURNING event_id"
)


def decode(message: AbstractIncomingMessage) -> tuple[Envelope, EventData]:
    try:
        envelope = Envelope.from_json(message.body)
        data = decode_data(envelope.type, envelope.version, envelope.data)
    except (ValidationError, UnknownEventType, UnsupportedEventVersion, ValueError) as exc:
        raise Undecodable(str(exc)[:1000]) from exc
    return envelope, data


@dataclass
class _Delivery:
    message: AbstractIncomingMessage
    envelope: Envelope
    data: EventData
    handler: Handler
    attempt: int


class InboxConsumer:
    """Consumes one work queue.

    Messages that arrive together are handled in one transaction (up to ``batch_size``): one
    inbox insert for all, the handlers in delivery order, one commit, then the acks. That keeps
    the cost per event low under load and changes nothing when traffic is light (a batch of one:
    a worker takes what is waiting and never waits for a batch to fill).
    If anything in a batch fails, the batch is rolled back and each message is handled on its
    own, so only the failing one is retried.
    """

    def __init__(
        self,
        broker: Broker,
        session_factory: async_sessionmaker[AsyncSession],
        queue: QueueSpec,
        handlers: dict[str, Handler],
        max_attempts: int = 5,
        prefetch: int = 256,
        batch_size: int = 32,
        workers: int = 2,
        observer: Callable[[str], None] | None = None,
    ) -> None:
        self._broker = broker
        self._sf = session_factory
        self.spec = queue
        self._handlers = handlers
        self._max_attempts = max_attempts
        self._prefetch = prefetch
        self._batch_size = batch_size
        self._workers = workers
        self._observer = observer
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._pending: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._acks = AckTracker()
        self._tasks: list[asyncio.Task[None]] = []
        self.name = queue.name.removeprefix(queue.prefix)
        self._latency = HANDLE_LATENCY.labels(self.name)

    async def start(self) -> None:
        self._channel = await self._broker.new_channel(prefetch=self._prefetch)
        exchange = await declare_exchange(self._channel, self._broker.exchange_name)
        self._queue = await declare_work_queue(self._channel, exchange, self.spec)
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        freeze_long_lived()
        await self._queue.consume(self.on_message)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Unacked messages go back to the queue when the channel closes.
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        # aio-pika starts these in delivery order and nothing here awaits before the tracker has
        # seen the delivery, so the tracker sees the deliveries in delivery-tag order.
        self._acks.received(message)
        self._pending.put_nowait(message)

    async def _work(self) -> None:
        while True:
            batch = [await self._pending.get()]
            while len(batch) < self._batch_size and not self._pending.empty():
                batch.append(self._pending.get_nowait())
            try:
                await self.handle_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away mid-ack: redelivery takes over
                log.warning("event.batch_error", error=repr(exc))

    async def handle_batch(self, messages: list[AbstractIncomingMessage]) -> None:
        deliveries: list[_Delivery] = []
        not_ours: list[AbstractIncomingMessage] = []
        for message in messages:
            attempt = header_int(message.headers, ATTEMPT_HEADER, 1)
            try:
                envelope, data = decode(message)
            except Undecodable as exc:
                await self._dead_letter(message, f"undecodable: {exc}", attempt)
                continue
            handler = self._handlers.get(envelope.type)
            if handler is None:  # bound by a wildcard, not one of ours
                not_ours.append(message)
                continue
            deliveries.append(_Delivery(message, envelope, data, handler, attempt))
        if not_ours:
            await self._acks.ack(not_ours)
        if len(deliveries) > 1:
            try:
                await self._handle_together(deliveries)
                return
            except Exception as exc:
                log.info("event.batch_split", size=len(deliveries), error=repr(exc)[:300])
        for delivery in deliveries:
            await self._handle_one(delivery)

    async def _handle_together(self, deliveries: list[_Delivery]) -> None:
        async with UnitOfWork(self._sf) as uow:
            fresh = await record_many_in_inbox(uow.session, self.name, [d.envelope for d in deliveries])
            done: set[uuid.UUID] = set()
            for d in deliveries:
                if d.envelope.id in fresh and d.envelope.id not in done:
                    with _event_context(d.envelope, self.name, self._attempt(d)):
                        await d.handler(d.envelope, d.data, uow)
                    done.add(d.envelope.id)
            await uow.commit()
        await self._acked(deliveries, done)

    def _attempt(self, d: _Delivery) -> Attempt:
        return Attempt(d.attempt, last=d.attempt >= self._max_attempts)

    async def _handle_one(self, d: _Delivery) -> None:
        with _event_context(d.envelope, self.name, self._attempt(d)):
            try:
                async with UnitOfWork(self._sf) as uow:
                    fresh = await record_in_inbox(uow.session, self.name, d.envelope)
                    if fresh:
                        await d.handler(d.envelope, d.data, uow)
                    await uow.commit()
            except Exception as exc:
                await self._retry_or_dead_letter(d.message, exc, d.attempt)
                return
        await self._acked([d], {d.envelope.id} if fresh else set())

    async def _acked(self, deliveries: list[_Delivery], handled: set[uuid.UUID]) -> None:
        """Ack after the commit, then count: ``handled`` are the ids whose effect ran; any other
        delivery (including a second copy within the batch) was a duplicate."""
        await self._acks.ack([d.message for d in deliveries])
        now = time.time()
        outcomes: Counter[tuple[str, str]] = Counter()
        for d in deliveries:
            fresh = d.envelope.id in handled
            handled.discard(d.envelope.id)
            outcomes[d.envelope.type, "handled" if fresh else "duplicate"] += 1
            if fresh:
                self._latency.observe(max(0.0, now - d.envelope.occurred_at.timestamp()))
            if self._observer is not None:
                self._observer(str(d.envelope.id))
        for (event_type, outcome), n in outcomes.items():
            EVENTS_HANDLED.labels(self.name, event_type, outcome).inc(n)

    async def _retry_or_dead_letter(self, message: AbstractIncomingMessage, exc: Exception, attempt: int) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        if attempt >= self._max_attempts:
            log.error("event.dead_lettered", attempts=attempt, reason=reason)
            await self._dead_letter(message, reason, attempt)
            return
        delays = self.spec.delays_ms
        delay = delays[min(attempt - 1, len(delays) - 1)]
        log.warning("event.retry_scheduled", attempt=attempt, delay_ms=delay, reason=reason)
        await self._forward(
            message,
            self.spec.retry_name(delay),
            {ATTEMPT_HEADER: attempt + 1, "x-koppel-last-error": reason},
        )
        EVENTS_HANDLED.labels(self.name, message.type or "", "retry").inc()

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str, attempt: int) -> None:
        await self._forward(
            message,
            self.spec.dead_letter_name,
            {
                ATTEMPT_HEADER: attempt,
                "x-koppel-queue": self.spec.name,
                "x-koppel-reason": reason,
                "x-koppel-failed-at": datetime.now(UTC).isoformat(),
            },
        )
        EVENTS_HANDLED.labels(self.name, message.type or "", "dead_letter").inc()

    async def _forward(self, message: AbstractIncomingMessage, queue_name: str, headers: dict[str, Any]) -> None:
        """Copy the message to another queue (confirmed), then ack the original. If the copy
        fails the original is requeued; a copy that landed twice is deduplicated by the inbox."""
        assert self._channel is not None
        copy = aio_pika.Message(
            body=message.body,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            type=message.type,
            correlation_id=message.correlation_id,
            timestamp=message.timestamp,
            headers={**(message.headers or {}), **headers},
        )
        try:
            await self._channel.default_exchange.publish(copy, routing_key=queue_name, mandatory=True)
        except Exception as exc:
            log.warning("event.forward_failed", queue=queue_name, error=repr(exc))
            try:
                await self._acks.settle(message, lambda: message.nack(requeue=True))
            except Exception as nack_exc:  # channel gone: the broker requeues it anyway
                log.warning("event.nack_failed", error=repr(nack_exc))
            return
        await self._acks.settle(message, message.ack)


@contextmanager
def _event_context(envelope: Envelope, consumer: str, attempt: Attempt) -> Iterator[None]:
    """Bind the event to every log line of its handler, and its attempt to ``current_attempt``.
    Tokens are reset rather than the previous values looked up first (``log_context``), which is
    most of the cost per event."""
    values = {"event_id": str(envelope.id), "event_type": envelope.type, "consumer": consumer}
    if envelope.correlation_id is not None:
        values["correlation_id"] = envelope.correlation_id
    if envelope.tenant_id is not None:
        values["tenant_id"] = str(envelope.tenant_id)
    tokens = structlog.contextvars.bind_contextvars(**values)
    attempt_token = _ATTEMPT.set(attempt)
    try:
        yield
    finally:
        _ATTEMPT.reset(attempt_token)
        structlog.contextvars.reset_contextvars(**tokens)
