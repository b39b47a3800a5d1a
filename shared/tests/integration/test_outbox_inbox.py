"""Outbox → RabbitMQ → inbox on the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
import sqlalchemy as sa

from koppel_shared.db import UnitOfWork, asyncpg_dsn
from koppel_shared.events import Envelope, new_event
from koppel_shared.events.system import Ping
from koppel_shared.messaging.broker import to_message
from koppel_shared.messaging.deadletters import discard_dead_letters, list_dead_letters, replay_dead_letters
from koppel_shared.messaging.inbox import InboxConsumer, record_many_in_inbox
from koppel_shared.messaging.outbox import OutboxRelay, PublishFailed
from koppel_shared.service import Runtime

from .conftest import Broker, count, effects, eventually

pytestmark = pytest.mark.integration


def relay_for(rt: Runtime, batch: int = 200) -> OutboxRelay:
    return OutboxRelay(rt.session_factory, rt.broker, asyncpg_dsn(rt.settings.database_url), batch, 0.3)


@contextlib.asynccontextmanager
async def running(*relays: OutboxRelay) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


@contextlib.asynccontextmanager
async def tap(rt: Runtime, binding: str = "system.#") -> AsyncIterator[list[Envelope]]:
    """A throwaway queue bound to the exchange that records what was published."""
    seen: list[Envelope] = []
    channel = await rt.broker.new_channel()
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(rt.broker.exchange, routing_key=binding)

    async def on(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        seen.append(Envelope.from_json(message.body))
        await message.ack()

    await queue.consume(on)
    try:
        yield seen
    finally:
        await channel.close()


async def record_effect(envelope: Envelope, data: Ping, uow: UnitOfWork) -> None:
    await uow.session.execute(sa.insert(effects).values(event_id=envelope.id, note=data.note))


async def test_event_is_published_when_its_transaction_commits_and_never_on_rollback(runtime: Runtime, clean: None):
    committed = new_event(Ping(sender="t", note="kept"), tenant_id=uuid.uuid4())
    rolled_back = new_event(Ping(sender="t", note="dropped"), tenant_id=uuid.uuid4())
    async with tap(runtime) as seen, running(relay_for(runtime)):
        async with runtime.uow() as uow:
            await uow.emit(rolled_back)
            await uow.session.execute(sa.insert(effects).values(event_id=rolled_back.id, note="state"))
            # no commit: the unit of work rolls back
        async with runtime.uow() as uow:
            await uow.emit(committed)
            await uow.session.execute(sa.insert(effects).values(event_id=committed.id, note="state"))
            await uow.commit()

        async def published() -> bool:
            return any(e.id == committed.id for e in seen)

        await eventually(published)
        await asyncio.sleep(0.5)
    assert [e.id for e in seen] == [committed.id]
    assert await count(runtime, "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL") == 1
    assert await count(runtime, "SELECT count(*) FROM effects") == 1


async def test_relay_wakes_on_notify_well_before_its_poll_interval(runtime: Runtime, clean: None):
    relay = OutboxRelay(runtime.session_factory, runtime.broker, asyncpg_dsn(runtime.settings.database_url), 100, 30.0)
    async with tap(runtime) as seen, running(relay):
        await asyncio.sleep(0.3)  # let it go idle on an empty outbox
        async with runtime.uow() as uow:
            await uow.emit(new_event(Ping(sender="t"), tenant_id=None))
            await uow.commit()

        async def published() -> bool:
            return len(seen) == 1

        await eventually(published, within=5.0)  # the poll alone would take 30 s


async def test_redelivered_event_has_exactly_one_effect(runtime: Runtime, clean: None):
    spec = runtime.queue("dedupe", ["system.ping"])
    consumer = InboxConsumer(runtime.broker, runtime.session_factory, spec, {"system.ping": record_effect})
    await consumer.start()
    try:
        envelope = new_event(Ping(sender="t", note="once"), tenant_id=uuid.uuid4())
        for _ in range(3):  # the same event id delivered three times
            await runtime.broker.exchange.publish(to_message(envelope), routing_key="system.ping")

        async def handled() -> bool:
            return await count(runtime, "SELECT count(*) FROM inbox") == 1

        await eventually(handled)
        await asyncio.sleep(0.5)
    finally:
        await consumer.stop()
    assert await count(runtime, "SELECT count(*) FROM effects WHERE event_id = :id", id=envelope.id) == 1


async def test_failing_handler_is_retried_with_delay_then_dead_lettered_and_replay_succeeds(
    runtime: Runtime, clean: None
):
    calls: list[float] = []
    healthy = False

    async def flaky(envelope: Envelope, data: Ping, uow: UnitOfWork) -> None:
        calls.append(asyncio.get_running_loop().time())
        await uow.session.execute(sa.insert(effects).values(event_id=envelope.id, note="partial"))
        if not healthy:
            raise RuntimeError("downstream unavailable")

    spec = runtime.queue("flaky", ["system.ping"])
    consumer = InboxConsumer(runtime.broker, runtime.session_factory, spec, {"system.ping": flaky}, max_attempts=3)
    await consumer.start()
    try:
        envelope = new_event(Ping(sender="t", note="retry me"), tenant_id=uuid.uuid4())
        await runtime.broker.publish(envelope)

        async def dead() -> bool:
            letters = await list_dead_letters(runtime.broker, "shared", runtime.settings.queue_prefix)
            return any(d.message_id == str(envelope.id) for d in letters)

        await eventually(dead)
        assert len(calls) == 3
        # delays of 100 ms then 300 ms (retry queues with TTL) between the attempts
        assert calls[1] - calls[0] >= 0.09 and calls[2] - calls[1] >= 0.28
        letter = next(
            d
            for d in await list_dead_letters(runtime.broker, "shared", runtime.settings.queue_prefix)
            if d.message_id == str(envelope.id)
        )
        assert "downstream unavailable" in letter.reason and letter.attempts == 3
        assert letter.queue == spec.name
        assert await count(runtime, "SELECT count(*) FROM effects") == 0  # failures left nothing behind

        healthy = True
        replayed = await replay_dead_letters(
            runtime.broker, "shared", runtime.settings.queue_prefix, {str(envelope.id)}
        )
        assert replayed == 1

        async def handled() -> bool:
            return await count(runtime, "SELECT count(*) FROM effects") == 1

        await eventually(handled)
        assert await list_dead_letters(runtime.broker, "shared", runtime.settings.queue_prefix) == []
    finally:
        await consumer.stop()


async def test_undecodable_message_goes_straight_to_dead_letter_and_the_queue_keeps_flowing(
    runtime: Runtime, clean: None
):
    spec = runtime.queue("poison", ["system.ping"])
    consumer = InboxConsumer(runtime.broker, runtime.session_factory, spec, {"system.ping": record_effect})
    await consumer.start()
    try:
        channel = runtime.broker.channel
        await channel.default_exchange.publish(
            aio_pika.Message(b"{not json", message_id="poison-1"), routing_key=spec.name
        )
        unknown = new_event(Ping(sender="x"), tenant_id=None).model_copy(update={"type": "system.unheard_of"})
        await channel.default_exchange.publish(to_message(unknown), routing_key=spec.name)
        too_new = new_event(Ping(sender="x"), tenant_id=None).model_copy(update={"version": 99})
        await channel.default_exchange.publish(to_message(too_new), routing_key=spec.name)
        good = new_event(Ping(sender="t", note="fine"), tenant_id=None)
        await runtime.broker.publish(good)

        async def settled() -> bool:
            letters = await list_dead_letters(runtime.broker, "shared", runtime.settings.queue_prefix)
            return len(letters) == 3 and await count(runtime, "SELECT count(*) FROM effects") == 1

        await eventually(settled)
        letters = await list_dead_letters(runtime.broker, "shared", runtime.settings.queue_prefix)
        reasons = " | ".join(d.reason for d in letters)
        assert "undecodable" in reasons and "unknown event type" in reasons and "newer than" in reasons
        assert all(d.attempts == 1 for d in letters)  # no retries for what cannot be decoded
    finally:
        await consumer.stop()
        await discard_dead_letters(runtime.broker, "shared", runtime.settings.queue_prefix)


async def test_two_relay_replicas_never_publish_one_row_twice(runtime: Runtime, clean: None):
    n = 2_000
    events = [new_event(Ping(sender="bulk", note=str(i)), tenant_id=None) for i in range(n)]
    async with runtime.uow() as uow:
        for start in range(0, n, 500):
            await uow.emit(*events[start : start + 500])
        await uow.commit()
    a, b = relay_for(runtime, batch=50), relay_for(runtime, batch=50)
    async with tap(runtime) as seen, running(a, b):

        async def all_seen() -> bool:
            return len(seen) >= n

        await eventually(all_seen, within=60)
        await asyncio.sleep(0.5)
    ids = [e.id for e in seen]
    assert len(ids) == n and len(set(ids)) == n
    assert a.published > 0 and b.published > 0  # both replicas really worked
    assert a.published + b.published == n
    assert await count(runtime, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0


async def test_emitting_the_same_event_id_twice_is_a_no_op(runtime: Runtime, clean: None):
    event = new_event(Ping(sender="feed"), tenant_id=None, id=uuid.uuid5(uuid.NAMESPACE_URL, "twikey/feed/42"))
    for _ in range(2):
        async with runtime.uow() as uow:
            await uow.emit(event)
            await uow.commit()
    assert await count(runtime, "SELECT count(*) FROM outbox") == 1


async def test_a_failing_event_in_a_batch_does_not_hold_back_or_double_the_others(runtime: Runtime, clean: None):
    async def picky(envelope: Envelope, data: Ping, uow: UnitOfWork) -> None:
        await uow.session.execute(sa.insert(effects).values(event_id=envelope.id, note=data.note))
        if data.note == "bad":
            raise ValueError("impossible event")

    spec = runtime.queue("batch", ["system.ping"])
    consumer = InboxConsumer(
        runtime.broker, runtime.session_factory, spec, {"system.ping": picky}, max_attempts=2, batch_size=50
    )
    events = [new_event(Ping(sender="t", note="bad" if i == 5 else f"ok{i}"), tenant_id=None) for i in range(40)]
    # Publish before consuming so that they arrive as batches; include duplicates of the same ids.
    await runtime.broker.channel.declare_queue(
        spec.name, durable=True, arguments={"x-queue-type": "classic", "x-expires": 120_000}
    )
    for event in [*events, *events[:10]]:
        await runtime.broker.channel.default_exchange.publish(to_message(event), routing_key=spec.name)
    await consumer.start()
    try:

        async def settled() -> bool:
            # The bad event was delivered twice (it is among the duplicates) and each copy fails on
            # its own, so it may be dead-lettered once or twice; nothing else may be.
            letters = await list_dead_letters(runtime.broker, "shared", runtime.settings.queue_prefix)
            only_the_bad_one = {d.message_id for d in letters} == {str(events[5].id)}
            return only_the_bad_one and await count(runtime, "SELECT count(*) FROM effects") == 39

        await eventually(settled)
        await asyncio.sleep(0.5)
        assert await count(runtime, "SELECT count(DISTINCT event_id) FROM effects") == 39
        assert await count(runtime, "SELECT count(*) FROM effects WHERE note = 'bad'") == 0
    finally:
        await consumer.stop()
        await discard_dead_letters(runtime.broker, "shared", runtime.settings.queue_prefix)


async def test_a_batch_holding_an_event_already_in_the_inbox_has_no_second_effect_and_acks_everything(
    runtime: Runtime, clean: None
):
    spec = runtime.queue("batchdedupe", ["system.ping"])
    consumer = InboxConsumer(runtime.broker, runtime.session_factory, spec, {"system.ping": record_effect})
    events = [new_event(Ping(sender="t", note=f"n{i}"), tenant_id=None) for i in range(20)]
    async with runtime.uow() as uow:  # the first one was handled before (a redelivery)
        assert await record_many_in_inbox(uow.session, consumer.name, events[:1]) == {events[0].id}
        await uow.commit()
    # Published before consuming, so that they arrive together and are handled as batches.
    channel = runtime.broker.channel
    await channel.declare_queue(spec.name, durable=True, arguments={"x-queue-type": "classic", "x-expires": 120_000})
    for event in events:
        await channel.default_exchange.publish(to_message(event), routing_key=spec.name)
    await consumer.start()
    try:

        async def handled() -> bool:
            return await count(runtime, "SELECT count(*) FROM inbox") == 20

        await eventually(handled)
        await asyncio.sleep(0.5)
    finally:
        await consumer.stop()  # anything left unacked would now go back to the queue
    assert await count(runtime, "SELECT count(*) FROM effects") == 19
    assert await count(runtime, "SELECT count(*) FROM effects WHERE event_id = :id", id=events[0].id) == 0
    left = await channel.declare_queue(spec.name, passive=True)
    assert left.declaration_result.message_count == 0


async def test_rows_the_broker_did_not_confirm_stay_unsent_and_go_out_with_the_next_relay(
    runtime: Runtime, clean: None
):
    events = [new_event(Ping(sender="t", note=str(i)), tenant_id=None) for i in range(3)]
    async with runtime.uow() as uow:
        await uow.emit(*events)
        await uow.commit()
    down = Broker(runtime.broker.url, runtime.broker.exchange_name)
    await down.connect()
    await down.channel.close()  # the broker is unreachable for this relay
    try:
        failing = OutboxRelay(runtime.session_factory, down, asyncpg_dsn(runtime.settings.database_url))
        with pytest.raises(PublishFailed):
            await failing.relay_batch()
    finally:
        await down.close()
    assert await count(runtime, "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND attempts = 1") == 3
    async with tap(runtime) as seen:
        assert await relay_for(runtime).relay_batch() == 3

        async def published() -> bool:
            return len(seen) == 3

        await eventually(published)
    assert [e.id for e in seen] == [e.id for e in events]  # in the order they were emitted
    assert await count(runtime, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
