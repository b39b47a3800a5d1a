"""Acknowledging consumed messages with few frames, never before their effect is committed.

One ``basic.ack`` with ``multiple`` settles every outstanding delivery up to its tag, so when a
batch commits, the run of finished deliveries at the low end of the delivery tags can be acked
with a single frame instead of one frame (and one broker round of work) per message. A finished
message that waits behind an unfinished lower tag is acked on its own straight away: a slow
handler never holds back the acks, nor the prefetch window, of the other workers.

Delivery tags are per channel and start again at 1 on a new channel, so the tracker follows the
channel of the latest delivery and ignores messages of a channel that is gone (the broker
redelivers those, and the inbox turns the redelivery into a no-op).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterable
from typing import Any

from aio_pika.abc import AbstractIncomingMessage


class AckTracker:
    def __init__(self) -> None:
        self._channel: Any = None
        self._open: list[int] = []  # heap of delivery tags received and not yet finished
        # Finished deliveries still below an open tag: the message to ack, or None once settled.
        self._finished: dict[int, AbstractIncomingMessage | None] = {}
        # Frames must reach the broker in the order decided here: a multiple ack sent ahead of a
        # single ack for a tag it covers would make the broker close the channel.
        self._lock = asyncio.Lock()

    def received(self, message: AbstractIncomingMessage) -> None:
        """Call for every delivery, in delivery order, before it is handled."""
        if message.channel is not self._channel:
            self._channel = message.channel
            self._open.clear()
            self._finished.clear()
        heapq.heappush(self._open, _tag(message))

    async def ack(self, messages: Iterable[AbstractIncomingMessage]) -> None:
        """Ack messages whose effects are committed (or that need no effect)."""
        async with self._lock:
            mine = [m for m in messages if m.channel is self._channel]
            for m in mine:
                self._finished[_tag(m)] = m
            highest = None
            while self._open and self._open[0] in self._finished:
                finished = self._finished.pop(heapq.heappop(self._open))
                if finished is not None:
                    highest = finished
            if highest is not None:
                await highest.ack(multiple=True)
            for m in mine:
                tag = _tag(m)
                if self._finished.get(tag) is m:  # waits behind an unfinished delivery
                    self._finished[tag] = None
                    await m.ack()

    async def settle(self, message: AbstractIncomingMessage, settle: Any) -> None:
        """Run ``settle`` (an ack or nack of this one message, e.g. after forwarding it) in turn
        with the batched acks, then count the message as finished."""
        async with self._lock:
            try:
                await settle()
            finally:
                if message.channel is self._channel:
                    tag = _tag(message)
                    self._finished[tag] = None
                    while self._open and self._open[0] in self._finished:
                        self._finished.pop(heapq.heappop(self._open))

    @property
    def outstanding(self) -> int:
        return len(self._open)


def _tag(message: AbstractIncomingMessage) -> int:
    tag = message.delivery_tag
    if tag is None:
        raise ValueError("a consumed message without a delivery tag cannot be acknowledged")
    return tag
