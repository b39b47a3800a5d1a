"""A tenant's Twikey connection: set, read, test; and the credentials the other use cases need.

The API key and private key are stored encrypted with ``runtime.secrets`` and never returned.
Decrypting is slow enough to matter per webhook, so ``KeyCache`` keeps the decrypted key in memory
for a short while (another replica sees a changed key at the latest after that TTL).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from koppel_shared.crypto import SecretBox
from koppel_shared.db import UnitOfWork
from koppel_shared.errors import Conflict, Invalid, NotFound
from sync_svc.adapters.orm import feed_cursors, twikey_connections
from sync_svc.adapters.twikey_client import Credentials, TwikeyError, TwikeyGateway, TwikeyUnavailable
from sync_svc.domain.feeds import FEEDS


@dataclass(frozen=True)
class Connection:
    tenant_id: uuid.UUID
    credentials: Credentials
    core_template_id: str | None
    b2b_template_id: str | None
    notify_before_collection: bool

    def template_for(self, scheme: str) -> str | None:
        return self.core_template_id if scheme == "CORE" else self.b2b_template_id


@dataclass
class KeyCache:
    """Decrypted API keys per tenant for a few seconds (None = known not to be connected)."""

    ttl: float
    _entries: dict[uuid.UUID, tuple[str | None, float]] = field(default_factory=dict)

    def get(self, tenant_id: uuid.UUID) -> tuple[bool, str | None]:
        found = self._entries.get(tenant_id)
        if found is None or time.monotonic() > found[1]:
            return False, None
        return True, found[0]

    def put(self, tenant_id: uuid.UUID, api_key: str | None) -> None:
        self._entries[tenant_id] = (api_key, time.monotonic() + self.ttl)

    def forget(self, tenant_id: uuid.UUID) -> None:
        self._entries.pop(tenant_id, None)


def webhook_url(public_base_url: str, tenant_id: uuid.UUID) -> str:
    return f"{public_base_url.rstrip('/')}/webhooks/twikey/{tenant_id}"


async def load(uow: UnitOfWork, secrets: SecretBox, tenant_id: uuid.UUID) -> Connection | None:
    row = (
        await uow.session.execute(sa.select(twikey_connections).where(twikey_connections.c.tenant_id == tenant_id))
    ).first()
    if row is None:
        return None
    return Connection(
        tenant_id=tenant_id,
        credentials=Credentials(
            tenant_id=str(tenant_id),
            base_url=row.base_url,
            api_key=secrets.decrypt(row.api_key_enc),
            private_key=secrets.decrypt(row.private_key_enc) if row.private_key_enc else None,
        ),
        core_template_id=row.core_template_id,
        b2b_template_id=row.b2b_template_id,
        notify_before_collection=row.notify_before_collection,
    )


async def require(uow: UnitOfWork, secrets: SecretBox, tenant_id: uuid.UUID) -> Connection:
    connection = await load(uow, secrets, tenant_id)
    if connection is None:
        raise Conflict("twikey_not_connected", "this tenant has no Twikey connection; PUT /v1/twikey/connection")
    return connection


async def save(
    uow: UnitOfWork,
    secrets: SecretBox,
    tenant_id: uuid.UUID,
    *,
    api_key: str | None,
    private_key: str | None,
    clear_private_key: bool,
    base_url: str,
    core_template_id: str | None,
    b2b_template_id: str | None,
    notify_before_collection: bool,
) -> None:
    """Create or replace the connection. Without ``api_key`` the stored one is kept (so an operator
    can change templates without re-entering the key); the first save needs one."""
    existing = (
        await uow.session.execute(
            sa.select(twikey_connections.c.api_key_enc, twikey_connections.c.private_key_enc).where(
                twikey_connections.c.tenant_id == tenant_id
            )
        )
    ).first()
    if existing is None and not api_key:
        raise Invalid("api_key_required", "the first connection needs the Twikey API key", field="api_key")
    values: dict[str, Any] = {
        "base_url": base_url.rstrip("/"),
        "core_template_id": core_template_id,
        "b2b_template_id": b2b_template_id,
        "notify_before_collection": notify_before_collection,
        "updated_at": datetime.now(UTC),
        "api_key_enc": secrets.encrypt(api_key) if api_key else existing.api_key_enc,  # type: ignore[union-attr,unused-ignore]
    }
    if private_key:
        values["private_key_enc"] = secrets.encrypt(private_key)
    elif clear_private_key:
        values["private_key_enc"] = None
    elif existing is not None:
        values["private_key_enc"] = existing.private_key_enc
    if api_key and existing is not None:
        # Another key may be another Twikey account: the old test result says nothing about it.
        values.update(last_test_at=None, last_test_ok=None, last_test_error=None, merchant_id=None)
    stmt = insert(twikey_connections).values(tenant_id=tenant_id, **values)
    await uow.session.execute(stmt.on_conflict_do_update(index_elements=["tenant_id"], set_=values))
    await uow.session.execute(
        insert(feed_cursors).values([{"tenant_id": tenant_id, "feed": f} for f in FEEDS]).on_conflict_do_nothing()
    )


async def describe(uow: UnitOfWork, tenant_id: uuid.UUID, public_base_url: str) -> dict[str, Any]:
    row = (
        await uow.session.execute(sa.select(twikey_connections).where(twikey_connections.c.tenant_id == tenant_id))
    ).first()
    if row is None:
        raise NotFound("twikey_not_connected", "this tenant has no Twikey connection yet")
    return {
        "tenant_id": str(tenant_id),
        "base_url": row.base_url,
        "api_key_set": True,
        "private_key_set": row.private_key_enc is not None,
        "core_template_id": row.core_template_id,
        "b2b_template_id": row.b2b_template_id,
        "notify_before_collection": row.notify_before_collection,
        "merchant_id": row.merchant_id,
        "webhook_url": webhook_url(public_base_url, tenant_id),
        "last_test": None
        if row.last_test_at is None
        else {"at": row.last_test_at, "ok": row.last_test_ok, "error": row.last_test_error},
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


async def test(uow: UnitOfWork, secrets: SecretBox, gateway: TwikeyGateway, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Log in with the stored key and record the outcome."""
    connection = await require(uow, secrets, tenant_id)
    outcome: dict[str, Any]
    try:
        result = await gateway.client(connection.credentials).login()
        outcome = {"ok": True, "merchant_id": result.merchant_id, "code": None, "message": "logged in"}
        gateway.sessions.put(connection.credentials.session_key, result.token)
    except TwikeyError as exc:
        outcome = {"ok": False, "merchant_id": None, "code": exc.code, "message": exc.message}
    except TwikeyUnavailable as exc:
        outcome = {"ok": False, "merchant_id": None, "code": "twikey_unavailable", "message": str(exc)}
    values: dict[str, Any] = {
        "last_test_at": datetime.now(UTC),
        "last_test_ok": outcome["ok"],
        "last_test_error": None if outcome["ok"] else f"{outcome['code']}: {outcome['message']}",
    }
    if outcome["ok"]:
        values["merchant_id"] = outcome["merchant_id"]
    await uow.session.execute(
        sa.update(twikey_connections).where(twikey_connections.c.tenant_id == tenant_id).values(**values)
    )
    return outcome


async def connected_tenants(uow: UnitOfWork) -> list[uuid.UUID]:
    return list((await uow.session.execute(sa.select(twikey_connections.c.tenant_id))).scalars())
