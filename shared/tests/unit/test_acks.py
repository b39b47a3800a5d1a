"""The ack tracker: few frames, and never an ack that covers a message not yet finished."""

from __future__ import annotations

from typing import Any

from koppel_shared.messaging.acks import AckTracker


class FakeMessage:
    """What the tracker touches of an aio-pika message; records the frames it would send."""

    def __init__(self, channel: Any, tag: int, frames: list[tuple[str, int, bool]]) -> None:
        self.channel = channel
        self.delivery_tag = tag
        self._frames = frames

    async def ack(self, multiple: bool = False) -> None:
        self._frames.append(("ack", self.delivery_tag, multiple))

    async def nack(self, requeue: bool = True) -> None:
        self._frames.append(("nack", self.delivery_tag, False))


def deliver(tracker: AckTracker, channel: Any, tags: range, frames: list[tuple[str, int, bool]]) -> list[Any]:
    messages = [FakeMessage(channel, tag, frames) for tag in tags]
    for m in messages:
        tracker.received(m)  # type: ignore[arg-type]
    return messages


async def test_a_committed_batch_at_the_low_end_is_acked_with_one_multiple_ack() -> None:
    frames: list[tuple[str, int, bool]] = []
    tracker = AckTracker()
    messages = deliver(tracker, "ch", range(1, 6), frames)
    await tracker.ack(messages)
    assert frames == [("ack", 5, True)]
    assert tracker.outstanding == 0


async def test_a_batch_waiting_behind_an_unfinished_delivery_is_acked_one_by_one_and_not_covered_later() -> None:
    frames: list[tuple[str, int, bool]] = []
    tracker = AckTracker()
    m = deliver(tracker, "ch", range(1, 7), frames)
    await tracker.ack([m[3], m[4]])  # tags 4 and 5 finish while 1-3 are still being handled
    assert frames == [("ack", 4, False), ("ack", 5, False)]
    await tracker.ack([m[0], m[1], m[2]])  # 1-3 finish: one multiple ack up to 3, not over 4 and 5 again
    assert frames[2:] == [("ack", 3, True)]
    await tracker.ack([m[5]])
    assert frames[3:] == [("ack", 6, True)]
    assert tracker.outstanding == 0


async def test_a_message_settled_on_its_own_is_never_acked_again() -> None:
    frames: list[tuple[str, int, bool]] = []
    tracker = AckTracker()
    m = deliver(tracker, "ch", range(1, 4), frames)
    await tracker.settle(m[0], m[0].ack)  # e.g. forwarded to the retry queue, then acked
    await tracker.settle(m[2], lambda: m[2].nack(requeue=True))
    await tracker.ack([m[1]])
    assert frames == [("ack", 1, False), ("nack", 3, False), ("ack", 2, True)]  # covers only 2
    assert tracker.outstanding == 0


async def test_after_a_new_channel_the_old_channels_messages_are_left_to_redelivery() -> None:
    frames: list[tuple[str, int, bool]] = []
    tracker = AckTracker()
    old = deliver(tracker, "old", range(1, 4), frames)
    new = deliver(tracker, "new", range(1, 3), frames)  # delivery tags start again at 1
    await tracker.ack(old)  # their channel is gone: acking them there would fail
    assert frames == []
    await tracker.ack(new)
    assert frames == [("ack", 2, True)]
