"""Revoked tokens, as every service knows them: a revoked token is refused (401 ``token_revoked``).

Tokens are verified on their own (koppel_shared.auth), so a token someone should no longer hold
stays valid until it expires unless every service is told. sync-svc revokes (``DELETE
/v1/tokens/{id}``) and publishes ``token.revoked``; every service keeps the projection in its own
``revoked_tokens`` table (the system consumer writes it) and checks it on each request.

A revocation is keyed by the token's id (``jti``) *and* the tenant the token names (NO_TENANT for
admin and service tokens): a tenant can revoke a token the ``koppel`` command issued it by that
token's id, and whatever id it names, it never touches another tenant's token.

The check runs in the API processes, which are not the worker that writes the table, so each keeps
the set in memory and reads what was added since at most once every ``REFRESH_SECONDS``: a
revocation takes effect within about a second of its event being consumed, for one small query
a second per process. Rows are read back with an overlap, because a transaction that began
earlier (an earlier ``recorded_at``) may commit after a later one was already read.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from koppel_shared.auth import NO_TENANT
from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
from koppel_shared.events.system import TokenRevoked
from koppel_shared.messaging.tables import metadata

revoked_tokens = sa.Table(
    "revoked_tokens",
    metadata,
    sa.Column("tenant_id", sa.Uuid, primary_key=True),
    sa.Column("token_id", sa.String(64), primary_key=True),
    # When the token would have expired anyway: the row may be dropped after that.
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_revoked_tokens_recorded_at", "recorded_at"),
)

REFRESH_SECONDS = 1.0
# How far back each refresh reads again (see the module docstring); transactions here are short.
OVERLAP = timedelta(seconds=60)


async def remember_revocation(
    session: AsyncSession, tenant_id: uuid.UUID | None, token_id: str, expires_at: datetime | None = None
) -> bool:
    """Record a revocation (idempotent). True when it was new."""
    inserted = await session.execute(
        insert(revoked_tokens)
        .values(tenant_id=tenant_id or NO_TENANT, token_id=token_id, expires_at=expires_at)
        .on_conflict_do_nothing()
        .returning(revoked_tokens.c.token_id)
    )
    return inserted.first() is not None


async def on_token_revoked(envelope: Envelope, data: TokenRevoked, uow: UnitOfWork) -> None:
    await remember_revocation(uow.session, envelope.tenant_id, data.token_id, data.expires_at)


class RevocationList:
    """``is_revoked(tenant, token_id)`` for the request path, backed by ``revoked_tokens``."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory
        self._revoked: set[tuple[uuid.UUID, str]] = set()
        self._newest: datetime | None = None
        self._fresh_until = 0.0
        self._lock = asyncio.Lock()

    def add(self, tenant_id: uuid.UUID, token_id: str) -> None:
        """A revocation this process made itself: in effect at once, not at the next refresh."""
        self._revoked.add((tenant_id, token_id))

    async def is_revoked(self, tenant_id: uuid.UUID, token_id: str) -> bool:
        if time.monotonic() >= self._fresh_until:
            await self._refresh()
        return (tenant_id, token_id) in self._revoked

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() < self._fresh_until:  # another request refreshed meanwhile
                return
            query = sa.select(revoked_tokens.c.tenant_id, revoked_tokens.c.token_id, revoked_tokens.c.recorded_at)
            if self._newest is not None:
                query = query.where(revoked_tokens.c.recorded_at >= self._newest - OVERLAP)
            async with self._sessions() as session:
                rows = (await session.execute(query)).all()
            for row in rows:
                self._revoked.add((row.tenant_id, row.token_id))
                if self._newest is None or row.recorded_at > self._newest:
                    self._newest = row.recorded_at
            self._fresh_until = time.monotonic() + REFRESH_SECONDS


def create_revoked_tokens_table_v1() -> None:
    """The migration step every service runs (spelled out so it never changes after the fact)."""
    from alembic import op

    op.create_table(
        "revoked_tokens",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("token_id", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_revoked_tokens_recorded_at", "revoked_tokens", ["recorded_at"])


def drop_revoked_tokens_table_v1() -> None:
    from alembic import op

    op.drop_table("revoked_tokens")
