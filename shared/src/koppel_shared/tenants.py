"""Which tenants exist, as every service knows it: a token is only honoured for a registered tenant.

A signed token proves who issued it, not that its tenant exists: a token issued for a mistyped or
made-up tenant id would otherwise create invoices that no Twikey or Twinfield connection can ever
collect or book. sync-svc registers tenants (it owns each tenant's connection to Twikey, the first
thing a tenant needs) and publishes ``tenant.registered``; every service keeps the projection in
its own ``known_tenants`` table (the system consumer writes it) and checks it on each request.

The check is cached in the process: a known tenant stays known (tenants are not removed here), an
unknown one is asked again after a few seconds, so a tenant registered a moment ago is let in soon
and a stream of made-up tenants costs one query each per interval.
"""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
from koppel_shared.events.system import TenantRegistered
from koppel_shared.messaging.tables import metadata

known_tenants = sa.Table(
    "known_tenants",
    metadata,
    sa.Column("tenant_id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

UNKNOWN_RECHECK_SECONDS = 3.0


async def remember_tenant(session: AsyncSession, tenant_id: uuid.UUID, name: str) -> bool:
    """Record a tenant (idempotent). True when it was new."""
    inserted = await session.execute(
        insert(known_tenants)
        .values(tenant_id=tenant_id, name=name)
        .on_conflict_do_nothing()
        .returning(known_tenants.c.tenant_id)
    )
    return inserted.first() is not None


async def on_tenant_registered(envelope: Envelope, data: TenantRegistered, uow: UnitOfWork) -> None:
    if envelope.tenant_id is None:
        raise ValueError(f"tenant.registered {envelope.id} has no tenant_id")
    await remember_tenant(uow.session, envelope.tenant_id, data.name)


class TenantDirectory:
    """``is_known(tenant)`` for the request path, backed by the service's ``known_tenants``."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = session_factory
        self._known: set[uuid.UUID] = set()
        self._unknown_until: dict[uuid.UUID, float] = {}

    async def is_known(self, tenant_id: uuid.UUID) -> bool:
        if tenant_id in self._known:
            return True
        now = time.monotonic()
        if self._unknown_until.get(tenant_id, 0.0) > now:
            return False
        async with self._sessions() as session:
            query = sa.select(known_tenants.c.tenant_id).where(known_tenants.c.tenant_id == tenant_id)
            found = (await session.execute(query)).first()
        if found is None:
            if len(self._unknown_until) > 10_000:  # made-up ids must not grow the process
                self._unknown_until.clear()
            self._unknown_until[tenant_id] = now + UNKNOWN_RECHECK_SECONDS
            return False
        self._known.add(tenant_id)
        self._unknown_until.pop(tenant_id, None)
        return True


def create_known_tenants_table_v1() -> None:
    """The migration step every service runs (spelled out so it never changes after the fact)."""
    from alembic import op

    op.create_table(
        "known_tenants",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def drop_known_tenants_table_v1() -> None:
    from alembic import op

    op.drop_table("known_tenants")
