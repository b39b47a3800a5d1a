"""Group commit of received webhooks, and the key lookup the webhook path shares, with fakes of
the asyncpg pool (the real database is exercised by the integration tests)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from sync_svc.adapters.webhook_store import BatchWriter, WebhookRow
from sync_svc.service_layer.connections import KeyCache
from sync_svc.service_layer.webhooks import api_key_for


class FakeConnection:
    def __init__(self, pool: FakePool) -> None:
        self._pool = pool

    async def execute(self, query: str, *args: Any) -> None:
        self._pool.batches.append(list(args[1]))  # the query strings of the batch
        await asyncio.sleep(0.01)  # on its way to disk
        if self._pool.fail_next:
            self._pool.fail_next = False
            raise ConnectionError("disk full")


class FakePool:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.fail_next = False
        self.acquired = 0
        self.lookups = 0

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConnection]:
        self.acquired += 1
        yield FakeConnection(self)

    async def fetchval(self, query: str, *args: Any) -> str:
        self.lookups += 1
        await asyncio.sleep(0.01)
        return "encrypted-key"


def row(i: int) -> WebhookRow:
    return WebhookRow(uuid.uuid4(), f"type=contract&n={i}", "contract", None, None)


async def test_webhooks_arriving_together_are_stored_in_few_batches_each_answered_after_its_batch() -> None:
    pool = FakePool()
    writer = BatchWriter(pool, "drain", flushers=1)
    await asyncio.gather(*(writer.store(row(i), notify=False) for i in range(50)))
    assert sorted(q for batch in pool.batches for q in batch) == sorted(f"type=contract&n={i}" for i in range(50))
    assert len(pool.batches) <= 2  # the first one alone, then everything that queued meanwhile
    assert pool.acquired == 1  # one connection for the whole burst


async def test_a_failed_write_fails_only_the_webhooks_of_that_batch() -> None:
    pool = FakePool()
    writer = BatchWriter(pool, "drain", flushers=1)
    pool.fail_next = True
    with pytest.raises(ConnectionError):
        await writer.store(row(0), notify=False)
    await writer.store(row(1), notify=False)  # the next one is stored
    assert pool.batches == [["type=contract&n=0"], ["type=contract&n=1"]]


async def test_when_the_cached_key_expires_concurrent_webhooks_share_one_lookup() -> None:
    pool = FakePool()

    async def pg() -> FakePool:
        return pool

    resources = SimpleNamespace(keys=KeyCache(ttl=30), key_lookups={}, pg=pg)
    secrets = SimpleNamespace(decrypt=lambda token: f"key-from-{token}")
    tenant = uuid.uuid4()
    keys = await asyncio.gather(*(api_key_for(resources, secrets, tenant) for _ in range(20)))  # type: ignore[arg-type]
    assert keys == ["key-from-encrypted-key"] * 20
    assert pool.lookups == 1
    assert resources.key_lookups == {}
