"""What sync-svc keeps per process beside the shared runtime, its dependencies object: the
Twikey gateway (HTTP pool, session tokens), the decrypted-key cache for webhooks, and a plain
asyncpg pool for the webhook hot path (one INSERT per request is several times cheaper there than
an ORM session). Built once per process by ``open_resources`` (the definition's ``dependencies``),
reached in routes through ``sync_svc.dependencies.Deps`` and in consumers and loops by closure."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from koppel_shared.db import asyncpg_dsn
from koppel_shared.http import make_client
from koppel_shared.messaging.longlived import freeze_long_lived
from koppel_shared.service import Runtime
from sync_svc.adapters.twikey_client import RetryPolicy, SessionCache, TwikeyGateway
from sync_svc.adapters.webhook_store import BatchWriter
from sync_svc.service_layer.connections import KeyCache
from sync_svc.settings import Settings

# LISTENed to by the worker's drain loop; the webhook endpoint and feed resets NOTIFY it.
DRAIN_CHANNEL = "sync_drain"


@dataclass
class Resources:
    settings: Settings
    gateway: TwikeyGateway
    keys: KeyCache
    pool: Any = None  # asyncpg.Pool, opened lazily by the API process
    key_lookups: dict[uuid.UUID, asyncio.Future[str | None]] = field(default_factory=dict)
    _writer: BatchWriter | None = None
    _notified: dict[uuid.UUID, float] = field(default_factory=dict)

    async def pg(self) -> Any:
        if self.pool is None:
            self.pool = await asyncpg.create_pool(
                asyncpg_dsn(self.settings.database_url), min_size=1, max_size=self.settings.db_pool_size
            )
        return self.pool

    async def writer(self) -> BatchWriter:
        if self._writer is None:
            self._writer = BatchWriter(await self.pg(), DRAIN_CHANNEL, flushers=self.settings.webhook_store_flushers)
        return self._writer

    def should_notify(self, tenant_id: uuid.UUID) -> bool:
        """At most one NOTIFY per tenant per throttle window; the worker polls pending webhooks
        anyway, so a skipped NOTIFY delays a drain by at most the poll interval."""
        now = time.monotonic()
        last = self._notified.get(tenant_id, 0.0)
        if now - last < self.settings.webhook_notify_throttle_seconds:
            return False
        self._notified[tenant_id] = now
        return True

    async def aclose(self) -> None:
        await self.gateway.aclose()
        if self.pool is not None:
            await self.pool.close()


async def open_resources(runtime: Runtime[Settings]) -> Resources:
    settings = runtime.settings
    gateway = TwikeyGateway(
        http=make_client(timeout=settings.twikey_timeout_seconds, limits=_limits()),
        sessions=SessionCache(max_age=settings.twikey_session_max_age_seconds),
        retry=RetryPolicy(
            attempts=settings.twikey_retry_attempts,
            initial=settings.twikey_retry_initial_seconds,
            max_wait=settings.twikey_retry_max_wait_seconds,
        ),
    )
    resources = Resources(settings=settings, gateway=gateway, keys=KeyCache(ttl=settings.webhook_key_cache_seconds))
    runtime.closers.append(resources.aclose)
    # Everything built so far lives as long as the process: keep the garbage collector's full
    # collections (tens of ms with every request on hold) from walking it again and again.
    freeze_long_lived()
    return resources


def _limits() -> httpx.Limits:
    return httpx.Limits(max_connections=50, max_keepalive_connections=20)
