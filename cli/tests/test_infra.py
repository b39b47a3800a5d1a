"""The infrastructure probe does real work against the local services and names what is wrong."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from koppel_cli import infra


def test_probe_passes_on_the_running_services() -> None:
    assert infra.probe("postgresql") is None
    assert infra.probe("rabbitmq") is None


def test_probe_names_a_broker_that_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOPPEL_TEST_AMQP", "amqp://guest:guest@127.0.0.1:1/")
    why = infra.probe("rabbitmq", timeout=5)
    assert why is not None and "Connect" in why


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to stop the local broker")
def test_a_stopped_broker_application_is_started_again() -> None:
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    try:
        assert infra.probe("rabbitmq", timeout=5) is not None
        infra.ensure_infrastructure(say=lambda _: None)
        assert infra.probe("rabbitmq") is None
    finally:
        subprocess.run(["rabbitmqctl", "start_app"], check=False, capture_output=True, timeout=120)


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs rabbitmqctl to list the local broker's queues")
def test_sweep_deletes_left_behind_test_queues_and_nothing_else() -> None:
    import asyncio
    import uuid

    import aio_pika

    prefix = f"sweep{uuid.uuid4().hex[:6]}_"
    mine, other = f"{prefix}mandate.twikey", f"kept-{uuid.uuid4().hex[:6]}"

    async def declare() -> None:
        async with await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/") as connection:
            channel = await connection.channel()
            await channel.declare_queue(mine, durable=True)
            await channel.declare_queue(other, durable=True)

    async def exists(name: str) -> bool:
        async with await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/") as connection:
            try:
                await (await connection.channel()).declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                return False
            return True

    asyncio.run(declare())
    try:
        assert infra.sweep_queues() >= 1
        assert not asyncio.run(exists(mine))
        assert asyncio.run(exists(other))
    finally:
        subprocess.run(["rabbitmqctl", "delete_queue", other], capture_output=True, timeout=120, check=False)
