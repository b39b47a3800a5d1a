"""Tokens issued from the browser, and tenants created with their first operator token.

sync-svc signs with its own key (``settings.token_signing_key``) and keeps what each token is for
in ``issued_tokens`` (the token itself is shown once and never kept). Revoking records the
revocation in its own ``revoked_tokens`` at once and tells every other service with
``token.revoked`` (koppel_shared.revocations).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from koppel_shared.auth import SigningKey, issue_token_with_id
from koppel_shared.db import UnitOfWork
from koppel_shared.events import new_event
from koppel_shared.events.system import TenantRegistered, TokenRevoked
from koppel_shared.revocations import remember_revocation
from koppel_shared.tenants import known_tenants, remember_tenant
from sync_svc.adapters.orm import issued_tokens

# Enough for every ERP connection and operator of a tenant; a runaway script stops here.
MAX_ACTIVE_TOKENS = 100
FIRST_TOKEN_LABEL = "First operator token"


class TooManyTokens(Exception):
    pass


class TenantNameTaken(Exception):
    pass


@dataclass(frozen=True)
class Issued:
    token: str
    item: dict[str, Any]


def _item(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "label": row.label,
        "scopes": row.scopes.split(),
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "revoked_at": row.revoked_at,
    }


async def issue(
    uow: UnitOfWork,
    key: SigningKey,
    issuer: str,
    tenant_id: uuid.UUID,
    label: str,
    scopes: list[str],
    ttl_days: int,
) -> Issued:
    now = datetime.now(UTC)
    active = await uow.session.scalar(
        sa.select(sa.func.count())
        .select_from(issued_tokens)
        .where(
            issued_tokens.c.tenant_id == tenant_id,
            issued_tokens.c.revoked_at.is_(None),
            issued_tokens.c.expires_at > now,
        )
    )
    if (active or 0) >= MAX_ACTIVE_TOKENS:
        raise TooManyTokens(f"this tenant already has {MAX_ACTIVE_TOKENS} valid tokens; revoke some first")
    token, jti, expires = issue_token_with_id(key, tenant_id, scopes, timedelta(days=ttl_days), issuer=issuer)
    values = {
        "id": jti,
        "tenant_id": tenant_id,
        "label": label,
        "scopes": " ".join(scopes),
        "created_at": now,
        "expires_at": expires,
        "revoked_at": None,
    }
    row = (await uow.session.execute(sa.insert(issued_tokens).values(**values).returning(issued_tokens))).one()
    return Issued(token, _item(row))


async def list_tokens(uow: UnitOfWork, tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = await uow.session.execute(
        sa.select(issued_tokens)
        .where(issued_tokens.c.tenant_id == tenant_id)
        .order_by(issued_tokens.c.created_at.desc(), issued_tokens.c.id)
        .limit(1000)
    )
    return [_item(row) for row in rows]


async def revoke(uow: UnitOfWork, tenant_id: uuid.UUID, token_id: str) -> bool:
    """Revoke a token of this tenant: one sync-svc issued it, or (an id it does not know) one the
    ``koppel`` command did. False when the id is a token sync-svc issued for another tenant."""
    row = (
        await uow.session.execute(sa.select(issued_tokens).where(issued_tokens.c.id == token_id).with_for_update())
    ).first()
    if row is not None and row.tenant_id != tenant_id:
        return False
    expires_at = row.expires_at if row is not None else None
    if row is not None and row.revoked_at is None:
        await uow.session.execute(
            sa.update(issued_tokens).where(issued_tokens.c.id == token_id).values(revoked_at=datetime.now(UTC))
        )
    if await remember_revocation(uow.session, tenant_id, token_id, expires_at):
        await uow.emit(new_event(TokenRevoked(token_id=token_id, expires_at=expires_at), tenant_id=tenant_id))
    return True


async def create_tenant(
    uow: UnitOfWork, key: SigningKey, issuer: str, name: str, token_days: int
) -> tuple[uuid.UUID, Issued]:
    """A new tenant, registered everywhere (``tenant.registered``), with its first operator token."""
    taken = await uow.session.scalar(
        sa.select(known_tenants.c.tenant_id).where(sa.func.lower(known_tenants.c.name) == name.lower()).limit(1)
    )
    if taken is not None:
        raise TenantNameTaken(f"a tenant named {name!r} exists already ({taken})")
    tenant_id = uuid.uuid4()
    await remember_tenant(uow.session, tenant_id, name)
    await uow.emit(new_event(TenantRegistered(name=name), tenant_id=tenant_id))
    issued = await issue(uow, key, issuer, tenant_id, FIRST_TOKEN_LABEL, ["operator"], token_days)
    return tenant_id, issued
