"""The broker connection: robust (reconnects by itself), one publishing channel with publisher
confirms and returns raised, persistent messages.

aio-pika's robust connection re-opens channels, re-declares queues and re-registers consumers
after RabbitMQ restarts; publishes made while it is down raise, and the outbox relay simply
tries those rows again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection

from koppel_shared.events.envelope import Envelope
from koppel_shared.logging import get_logger
from koppel_shared.messaging.topology import declare_exchange

log = get_logger(__name__)


def to_message(envelope: Envelope) -> aio_pika.Message:
    return build_message(
        envelope.to_json(),
        event_id=envelope.id,
        type=envelope.type,
        tenant_id=envelope.tenant_id,
        correlation_id=envelope.correlation_id,
        occurred_at=envelope.occurred_at,
    )


def build_message(
    body: bytes,
    *,
    event_id: object,
    type: str,
    tenant_id: object | None,
    correlation_id: str | None,
    occurred_at: datetime,
) -> aio_pika.Message:
    """A persistent message whose properties repeat the envelope's, so the broker, the
    management UI and the dead-letter tools can tell what it is without parsing the body."""
    return aio_pika.Message(
        body=body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(event_id),
        type=type,
        correlation_id=correlation_id,
        timestamp=occurred_at,
        headers={"x-koppel-tenant": str(tenant_id) if tenant_id else ""},
    )


def message_properties(
    *,
    event_id: object,
    type: str,
    tenant_id: object | None,
    correlation_id: str | None,
    occurred_at: datetime,
) -> aiormq.spec.Basic.Properties:
    """The properties ``build_message`` gives a message, without building the message (the
    relay publishes thousands a second and needs nothing else of it)."""
    return aiormq.spec.Basic.Properties(
        content_type="application/json",
        delivery_mode=int(aio_pika.DeliveryMode.PERSISTENT),
        priority=0,
        message_id=str(event_id),
        message_type=type,
        correlation_id=correlation_id,
        timestamp=occurred_at,
        headers={"x-koppel-tenant": str(tenant_id) if tenant_id else ""},
    )


class Broker:
    """Owns the connection; hands out the confirm channel and the events exchange."""

    def __init__(self, url: str, exchange_name: str) -> None:
        self.url = url
        self.exchange_name = exchange_name
        self.connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()

    async def connect(self, attempts: int = 30) -> None:
        delay = 0.5
        for attempt in range(1, attempts + 1):
            try:
                self.connection = await aio_pika.connect_robust(self.url, reconnect_interval=1.0)
                break
            except (OSError, aio_pika.exceptions.AMQPConnectionError) as exc:
                if attempt == attempts:
                    raise
                log.warning("broker.connect_failed", attempt=attempt, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        assert self.connection is not None
        self._channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        self._exchange = await declare_exchange(self._channel, self.exchange_name)

    @property
    def channel(self) -> AbstractChannel:
        if self._channel is None:
            raise RuntimeError("broker is not connected")
        return self._channel

    @property
    def exchange(self) -> AbstractExchange:
        if self._exchange is None:
            raise RuntimeError("broker is not connected")
        return self._exchange

    @property
    def is_connected(self) -> bool:
        return bool(self.connection and not self.connection.is_closed and self._channel and not self._channel.is_closed)

    async def new_channel(self, prefetch: int = 0) -> AbstractChannel:
        assert self.connection is not None
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        if prefetch:
            await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def publish(self, envelope: Envelope) -> None:
        """Publish one event to the exchange and wait for the broker's confirm."""
        await self.exchange.publish(to_message(envelope), routing_key=envelope.type, mandatory=True)

    async def publish_many(
        self, messages: Sequence[tuple[str, bytes, aiormq.spec.Basic.Properties]]
    ) -> list[BaseException | None]:
        """Publish (routing key, body, properties) to the events exchange, all in flight at once:
        mandatory, each confirmed by the broker. Returns, per message, None once confirmed or
        the error (not confirmed, returned as unroutable, or the channel was down).

        This is what ``exchange.publish`` does, on the channel under it: without a message
        object per publish, and without waiting for each frame to be written before queueing
        the next (``wait=False``) — the confirms are what is awaited."""
        if self.channel.is_closed:  # down: fail now, as exchange.publish does, not after reconnecting
            error = aiormq.exceptions.ChannelInvalidStateError(f"{self.channel!r} closed")
            return [error for _ in messages]
        channel = await self.channel.get_underlay_channel()
        if not isinstance(channel, aiormq.Channel):  # only the concrete channel takes ``wait``
            raise TypeError(f"unexpected channel type {type(channel)!r}")
        results = await asyncio.gather(
            *(
                channel.basic_publish(
                    body, exchange=self.exchange_name, routing_key=key, properties=props, mandatory=True, wait=False
                )
                for key, body, props in messages
            ),
            return_exceptions=True,
        )
        return [r if isinstance(r, BaseException) else None for r in results]

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = None
