"""After RabbitMQ restarts, the relay and the consumers come back by themselves and nothing
committed while it was down is lost. Restarts the local broker (``rabbitmqctl stop_app``)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest
import sqlalchemy as sa

from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope, new_event
from koppel_shared.events.system import Ping
from koppel_shared.messaging.inbox import InboxConsumer
from koppel_shared.service import Runtime
from koppel_shared.testing.waiting import eventually

from .conftest import count, effects
from .test_outbox_inbox import relay_for, running

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to restart the local broker"),
]


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


async def test_relay_and_consumer_recover_after_broker_restart(runtime: Runtime, clean: None):
    async def record(envelope: Envelope, data: Ping, uow: UnitOfWork) -> None:
        await uow.session.execute(sa.insert(effects).values(event_id=envelope.id, note=data.note))

    consumer = InboxConsumer(
        runtime.broker, runtime.session_factory, runtime.queue("restart", ["system.ping"]), {"system.ping": record}
    )
    await consumer.start()

    async def emit(note: str) -> None:
        async with runtime.uow() as uow:
            await uow.emit(new_event(Ping(sender="t", note=note), tenant_id=None))
            await uow.commit()

    try:
        async with running(relay_for(runtime)):
            await emit("before")

            async def first() -> bool:
                return await count(runtime, "SELECT count(*) FROM effects") == 1

            await eventually(first)

            await asyncio.to_thread(rabbitmqctl, "stop_app")
            try:
                for i in range(20):  # committed while the broker is down: must not be lost
                    await emit(f"during-{i}")
            finally:
                await asyncio.to_thread(rabbitmqctl, "start_app")
            await asyncio.to_thread(rabbitmqctl, "await_startup")
            await emit("after")

            async def all_handled() -> bool:
                return await count(runtime, "SELECT count(*) FROM effects") == 22

            await eventually(all_handled, within=90)
        assert await count(runtime, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0
        assert await count(runtime, "SELECT count(DISTINCT note) FROM effects") == 22
    finally:
        await consumer.stop()
