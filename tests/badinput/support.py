"""Helpers the bad-input tests share: fresh per-service databases, tenant tokens, and a raw HTTP/1.1
client for requests no well-behaved client library will send (100 KB request lines, raw bytes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from koppel_shared.auth import issue_token
from koppel_shared.migrations import drop_database, ensure_database, migrate
from koppel_shared.service import ServiceDefinition
from koppel_shared.settings import KoppelSettings
from koppel_shared.testing.fixtures import PG_BASE, TEST_SIGNING_KEY, settings_for_test, unique_name

SERVICES = ("mandate", "collection", "sync", "bookkeeping", "notify")
PROBLEM = "application/problem+json"


def definition_of(name: str) -> ServiceDefinition:
    module = __import__(f"{name}_svc.bootstrap", fromlist=["definition"])
    return module.definition  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def migrated_databases(names: tuple[str, ...] = SERVICES) -> AsyncIterator[dict[str, str]]:
    """A fresh, migrated database per service, dropped afterwards. Created and dropped together
    (each costs PostgreSQL a checkpoint, which concurrent ones share); migrated one after another
    (Alembic's context is global)."""
    urls = {name: f"{PG_BASE}/{unique_name(name)}" for name in names}
    try:
        await asyncio.gather(*(ensure_database(url) for url in urls.values()))
        for name, url in urls.items():
            await migrate(definition_of(name).migrations_dir, url)
        yield urls
    finally:
        await asyncio.gather(*(drop_database(url) for url in urls.values()))


def service_settings(name: str, database_url: str, prefix: str, **overrides: Any) -> KoppelSettings:
    return settings_for_test(definition_of(name).settings_cls, database_url, prefix, **overrides)


def bearer(settings: KoppelSettings, tenant_id: uuid.UUID, scopes: list[str]) -> dict[str, str]:
    token = issue_token(TEST_SIGNING_KEY, tenant_id, scopes, ttl=timedelta(hours=1))
    return {"Authorization": f"Bearer {token}"}


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_get(port: int, target: bytes, headers: dict[bytes, bytes] | None = None) -> RawResponse:
    """``GET <target> HTTP/1.1`` over a plain socket, the bytes exactly as given."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [b"GET " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
        lines += [name + b": " + value for name, value in (headers or {}).items()]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), parsed, body)
