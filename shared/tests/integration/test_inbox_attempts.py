"""A handler learns which try at an event it runs in (``current_attempt``), on the real broker:
what a command handler needs to answer "failed" on its last try instead of dead-lettering."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope, new_event
from koppel_shared.events.system import Ping
from koppel_shared.messaging.deadletters import list_dead_letters
from koppel_shared.messaging.inbox import Attempt, InboxConsumer, current_attempt
from koppel_shared.service import Runtime

from .conftest import count, effects, eventually

pytestmark = pytest.mark.integration


def test_outside_a_consumer_it_is_the_first_try_and_not_the_last():
    assert current_attempt() == Attempt(1, last=False)


async def test_each_retry_counts_one_more_and_the_last_try_is_marked(runtime: Runtime, clean: None):
    seen: list[Attempt] = []

    async def answer_on_last_try(envelope: Envelope, data: Ping, uow: UnitOfWork) -> None:
        attempt = current_attempt()
        seen.append(attempt)
        if not attempt.last:
            raise ConnectionError("downstream unavailable")
        await uow.session.execute(sa.insert(effects).values(event_id=envelope.id, note=f"gave up: {attempt.number}"))

    spec = runtime.queue("attempts", ["system.ping"])
    consumer = InboxConsumer(
        runtime.broker, runtime.session_factory, spec, {"system.ping": answer_on_last_try}, max_attempts=3
    )
    await consumer.start()
    try:
        envelope = new_event(Ping(sender="t", note="try me"), tenant_id=uuid.uuid4())
        await runtime.broker.publish(envelope)

        async def answered() -> bool:
            return await count(runtime, "SELECT count(*) FROM effects") == 1

        await eventually(answered)
        await asyncio.sleep(0.3)
    finally:
        await consumer.stop()
    assert seen == [Attempt(1, last=False), Attempt(2, last=False), Attempt(3, last=True)]
    assert await count(runtime, "SELECT count(*) FROM effects WHERE note = 'gave up: 3'") == 1
    assert await list_dead_letters(runtime.broker, "shared", runtime.settings.queue_prefix) == []
    assert current_attempt() == Attempt(1, last=False)  # the handler's attempt did not leak out
