"""RabbitMQ topology, declared idempotently on start.

- ``koppel.events``: a durable topic exchange; routing key = event type. Its alternate exchange
  keeps events nobody is bound to (instead of returning them), so only a misconfigured broker
  makes a publish fail.
- per (service, purpose) a durable work queue, bound to the event types it handles;
- per work queue one delayed-retry queue per delay: a message waits there for the queue's TTL and
  is dead-lettered back to the work queue. The delay is part of the name, so changing the delays
  declares new queues instead of clashing with the old arguments;
- per service one dead-letter queue, where messages go after the last attempt or when they cannot
  be decoded at all. Operators list and replay them.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from aiormq.abc import FieldTable

UNROUTED_SUFFIX = ".unrouted"


@dataclass(frozen=True)
class QueueSpec:
    service: str
    purpose: str
    bindings: tuple[str, ...]
    prefix: str = ""
    delays_ms: tuple[int, ...] = (1_000, 10_000, 60_000, 600_000)
    queue_type: str = "quorum"
    expires_ms: int | None = None

    @property
    def name(self) -> str:
        return f"{self.prefix}{self.service}.{self.purpose}"

    def retry_name(self, delay_ms: int) -> str:
        return f"{self.name}.retry.{delay_ms}ms"

    @property
    def dead_letter_name(self) -> str:
        return dead_letter_queue_name(self.service, self.prefix)


def dead_letter_queue_name(service: str, prefix: str = "") -> str:
    return f"{prefix}{service}.dead-letter"


def _queue_args(queue_type: str, expires_ms: int | None = None) -> FieldTable:
    args: FieldTable = {"x-queue-type": queue_type}
    if expires_ms:
        args["x-expires"] = expires_ms
    return args


async def declare_exchange(channel: AbstractChannel, name: str) -> AbstractExchange:
    unrouted = await channel.declare_exchange(name + UNROUTED_SUFFIX, aio_pika.ExchangeType.FANOUT, durable=True)
    # Bounded parking for events no service is bound to: visible to operators, never a leak.
    parking = await channel.declare_queue(
        name + UNROUTED_SUFFIX,
        durable=True,
        arguments={"x-max-length": 10_000, "x-overflow": "drop-head"},
    )
    await parking.bind(unrouted)
    return await channel.declare_exchange(
        name,
        aio_pika.ExchangeType.TOPIC,
        durable=True,
        arguments={"alternate-exchange": name + UNROUTED_SUFFIX},
    )


async def declare_dead_letter_queue(
    channel: AbstractChannel, service: str, prefix: str = "", expires_ms: int | None = None
) -> AbstractQueue:
    return await channel.declare_queue(
        dead_letter_queue_name(service, prefix), durable=True, arguments=_queue_args("classic", expires_ms)
    )


async def declare_work_queue(channel: AbstractChannel, exchange: AbstractExchange, spec: QueueSpec) -> AbstractQueue:
    queue = await channel.declare_queue(
        spec.name, durable=True, arguments=_queue_args(spec.queue_type, spec.expires_ms)
    )
    for key in spec.bindings:
        await queue.bind(exchange, routing_key=key)
    for delay in spec.delays_ms:
        await channel.declare_queue(
            spec.retry_name(delay),
            durable=True,
            arguments={
                **_queue_args("classic", spec.expires_ms),
                "x-message-ttl": delay,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": spec.name,
            },
        )
    await declare_dead_letter_queue(channel, spec.service, spec.prefix, spec.expires_ms)
    return queue
