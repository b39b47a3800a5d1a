"""Dead letters: list what a service's dead-letter queue holds, and replay messages to the queue
they came from.

Both read with ``basic.get`` on a channel of their own: messages not replayed stay unacked until
the channel closes, which puts them back in the queue in their order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aio_pika

from koppel_shared.messaging.broker import Broker
from koppel_shared.messaging.inbox import ATTEMPT_HEADER, header_int
from koppel_shared.messaging.topology import dead_letter_queue_name


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    type: str
    queue: str
    reason: str
    attempts: int
    failed_at: str
    tenant_id: str
    body: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


async def _existing(channel: aio_pika.abc.AbstractChannel, service: str, prefix: str) -> Any:
    # Passive: never re-declare with other arguments than the consumer used.
    try:
        return await channel.declare_queue(dead_letter_queue_name(service, prefix), passive=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return None


def _describe(message: aio_pika.abc.AbstractIncomingMessage) -> DeadLetter:
    headers = message.headers or {}
    return DeadLetter(
        message_id=message.message_id or "",
        type=message.type or "",
        queue=str(headers.get("x-koppel-queue", "")),
        reason=str(headers.get("x-koppel-reason", "")),
        attempts=header_int(headers, ATTEMPT_HEADER, 0),
        failed_at=str(headers.get("x-koppel-failed-at", "")),
        tenant_id=str(headers.get("x-koppel-tenant", "")),
        body=message.body[:2000].decode(errors="replace"),
    )


async def list_dead_letters(broker: Broker, service: str, prefix: str = "", limit: int = 100) -> list[DeadLetter]:
    channel = await broker.new_channel()
    try:
        queue = await _existing(channel, service, prefix)
        found: list[DeadLetter] = []
        if queue is None:
            return found
        while len(found) < limit:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            found.append(_describe(message))
        return found
    finally:
        await channel.close()


async def replay_dead_letters(
    broker: Broker, service: str, prefix: str = "", message_ids: set[str] | None = None
) -> int:
    """Send dead letters back to their work queue with a fresh attempt count. ``None`` = all."""

    async def send_back(channel: aio_pika.abc.AbstractChannel, message: aio_pika.abc.AbstractIncomingMessage) -> bool:
        headers = dict(message.headers or {})
        target = str(headers.get("x-koppel-queue", ""))
        if not target:
            return False
        headers[ATTEMPT_HEADER] = 1
        headers["x-koppel-replayed"] = True
        await channel.default_exchange.publish(
            aio_pika.Message(
                body=message.body,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message.message_id,
                type=message.type,
                correlation_id=message.correlation_id,
                timestamp=message.timestamp,
                headers=headers,
            ),
            routing_key=target,
            mandatory=True,
        )
        return True

    return await _take(broker, service, prefix, message_ids, send_back)


async def discard_dead_letters(
    broker: Broker, service: str, prefix: str = "", message_ids: set[str] | None = None
) -> int:
    """Remove dead letters an operator has dealt with. ``None`` = all."""

    async def drop(_: aio_pika.abc.AbstractChannel, __: aio_pika.abc.AbstractIncomingMessage) -> bool:
        return True

    return await _take(broker, service, prefix, message_ids, drop)


Action = Callable[[aio_pika.abc.AbstractChannel, aio_pika.abc.AbstractIncomingMessage], Awaitable[bool]]


async def _take(broker: Broker, service: str, prefix: str, message_ids: set[str] | None, action: Action) -> int:
    """Apply ``action`` to the selected dead letters and ack those it handled."""
    channel = await broker.new_channel()
    taken = 0
    try:
        queue = await _existing(channel, service, prefix)
        while queue is not None:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            if message_ids is not None and message.message_id not in message_ids:
                continue
            if await action(channel, message):
                await message.ack()
                taken += 1
        return taken
    finally:
        await channel.close()
