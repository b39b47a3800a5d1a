"""Idempotent consumer (inbox): a handler's effect and the record "(consumer, event id) is done"
commit in one transaction; the message is acked only after that commit.

- a redelivered event finds its inbox row and is acked without a second effect;
- a handler error sends a copy to the delayed-retry queue for this attempt (TTL, then back to the
  work queue) and, after the last attempt, to the service's dead-letter queue with the reason;
- a message that cannot be decoded (bad JSON, unknown type, unsupported version, invalid data)
  goes straight to the dead-letter queue: retrying cannot help it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from koppel_shared.db import UnitOfWork
from koppel_shared.events.envelope import Envelope
from koppel_shared.events.registry import EventData, UnknownEventType, UnsupportedEventVersion, decode_data
from koppel_shared.logging import get_logger, log_context
from koppel_shared.messaging.broker import Broker
from koppel_shared.messaging.tables import inbox
from koppel_shared.messaging.topology import QueueSpec, declare_exchange, declare_work_queue
from koppel_shared.metrics import EVENTS_HANDLED, HANDLE_LATENCY

log = get_logger(__name__)

ATTEMPT_HEADER = "x-koppel-attempt"
Handler = Callable[[Envelope, Any, UnitOfWork], Awaitable[None]]


class Undecodable(Exception):
    pass


@dataclass
class ConsumerSpec:
    """What one queue of a service handles: ``handlers`` maps event type → handler."""

    purpose: str
    bindings: tuple[str, ...]
    handlers: dict[str, Handler]


async def record_in_inbox(session: AsyncSession, consumer: str, envelope: Envelope) -> bool:
    """True the first time (consumer, event id) is seen; False for a duplicate."""
    result = await session.execute(
        insert(inbox)
        .values(consumer=consumer, event_id=envelope.id, event_type=envelope.type)
        .on_conflict_do_nothing()
        .returning(inbox.c.event_id)
    )
    return result.first() is not None


def decode(message: AbstractIncomingMessage) -> tuple[Envelope, EventData]:
    try:
        envelope = Envelope.from_json(message.body)
        data = decode_data(envelope.type, envelope.version, envelope.data)
    except (ValidationError, UnknownEventType, UnsupportedEventVersion, ValueError) as exc:
        raise Undecodable(str(exc)[:1000]) from exc
    return envelope, data


class InboxConsumer:
    def __init__(
        self,
        broker: Broker,
        session_factory: async_sessionmaker[AsyncSession],
        queue: QueueSpec,
        handlers: dict[str, Handler],
        max_attempts: int = 5,
        prefetch: int = 64,
    ) -> None:
        self._broker = broker
        self._sf = session_factory
        self.spec = queue
        self._handlers = handlers
        self._max_attempts = max_attempts
        self._prefetch = prefetch
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self.name = queue.name.removeprefix(queue.prefix)

    async def start(self) -> None:
        self._channel = await self._broker.new_channel(prefetch=self._prefetch)
        exchange = await declare_exchange(self._channel, self._broker.exchange_name)
        self._queue = await declare_work_queue(self._channel, exchange, self.spec)
        await self._queue.consume(self.on_message)

    async def stop(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        attempt = int((message.headers or {}).get(ATTEMPT_HEADER, 1) or 1)
        try:
            envelope, data = decode(message)
        except Undecodable as exc:
            await self._dead_letter(message, f"undecodable: {exc}", attempt)
            return
        handler = self._handlers.get(envelope.type)
        if handler is None:  # bound by a wildcard, not one of ours
            await message.ack()
            return
        with log_context(
            correlation_id=envelope.correlation_id,
            tenant_id=envelope.tenant_id,
            event_id=envelope.id,
            event_type=envelope.type,
            consumer=self.name,
        ):
            try:
                async with UnitOfWork(self._sf) as uow:
                    fresh = await record_in_inbox(uow.session, self.name, envelope)
                    if fresh:
                        await handler(envelope, data, uow)
                    await uow.commit()
            except Exception as exc:
                await self._retry_or_dead_letter(message, exc, attempt)
                return
            await message.ack()
            outcome = "handled" if fresh else "duplicate"
            EVENTS_HANDLED.labels(self.name, envelope.type, outcome).inc()
            if fresh:
                HANDLE_LATENCY.labels(self.name).observe(max(0.0, time.time() - envelope.occurred_at.timestamp()))

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
                await message.nack(requeue=True)
            except Exception as nack_exc:  # channel gone: the broker requeues it anyway
                log.warning("event.nack_failed", error=repr(nack_exc))
            return
        await message.ack()
