"""Pytest fixtures on the real PostgreSQL and RabbitMQ (loaded by the root ``conftest.py``).

Every test module gets its own database (created, then dropped with FORCE) and its own exchange
and queue prefix; test queues expire once unused, so nothing piles up on the broker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import aio_pika
import pytest

from koppel_shared.auth import SigningKey, issue_service_token
from koppel_shared.migrations import drop_database, ensure_database
from koppel_shared.settings import KoppelSettings

S = TypeVar("S", bound=KoppelSettings)

PG_BASE = os.environ.get("KOPPEL_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP_URL = os.environ.get("KOPPEL_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")


# The tests' token key pair: tests issue tokens with it, the services under test verify with its
# public key (settings_for_test). sync-svc signs the tokens it issues with a key of its own.
TEST_SIGNING_KEY = SigningKey.parse("test:dGVzdC1vbmx5LXRva2VuLWtleS0wMTIzNDU2Nzg5YWI")
TEST_SYNC_SIGNING_KEY = SigningKey.parse("test-sync:dGVzdC1vbmx5LXN5bmMtdG9rZW4ta2V5LTAxMjM0NTY")
TEST_PUBLIC_KEYS = f"{TEST_SIGNING_KEY.public_entry()},{TEST_SYNC_SIGNING_KEY.public_entry()}"


def unique_name(kind: str) -> str:
    return f"t_{kind}_{uuid.uuid4().hex[:10]}"


def settings_for_test(settings_cls: type[S], database_url: str, prefix: str, **overrides: Any) -> S:
    """Settings for one test: its own database, exchange and queue prefix, fast retries."""
    values: dict[str, Any] = {
        "environment": "test",
        "token_public_keys": TEST_PUBLIC_KEYS,
        "encryption_keys": "dGVzdC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY=",
        "database_url": database_url,
        "amqp_url": AMQP_URL,
        "exchange": f"{prefix}events",
        "queue_prefix": prefix,
        "queue_type": "classic",
        "queue_expires_ms": 120_000,
        "retry_delays_ms": [100, 300],
        "max_attempts": 3,
        "relay_poll_seconds": 0.5,
        "db_pool_size": 5,
        "log_json": True,
        # One service alone has no sync-svc registering tenants; the tests of the check turn it on.
        "known_tenants_only": False,
    }
    if "token_signing_key" in settings_cls.model_fields:  # sync-svc, the issuer of browser-made tokens
        values["token_signing_key"] = TEST_SYNC_SIGNING_KEY.encoded()
    if "sync_token" in settings_cls.model_fields:
        values["sync_token"] = issue_service_token(TEST_SIGNING_KEY, settings_cls.service_prefix.split("_")[1].lower())
    values.update(overrides)
    return settings_cls(**values)


@pytest.fixture(scope="module")
async def database_url() -> AsyncIterator[str]:
    url = f"{PG_BASE}/{unique_name('db')}"
    await ensure_database(url)
    yield url
    await drop_database(url)


@pytest.fixture(scope="module")
def broker_prefix() -> str:
    return unique_name("q") + "."


@pytest.fixture(scope="module")
async def cleanup_exchange(broker_prefix: str) -> AsyncIterator[None]:
    yield
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for name in (f"{broker_prefix}events", f"{broker_prefix}events.unrouted"):
            await channel.exchange_delete(name)
        channel = await connection.channel()
        await channel.queue_delete(f"{broker_prefix}events.unrouted")
