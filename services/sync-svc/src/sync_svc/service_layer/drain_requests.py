"""Which tenants need a drain, and settling those requests once a drain succeeded.

A request is either a stored webhook not yet drained or a ``drain_requests`` row (feed reset,
safety net). Coalescing falls out of this: however many webhooks arrived, one drain settles all
those that were pending when it started; those arriving meanwhile ask for one more drain.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from koppel_shared.db import UnitOfWork
from sync_svc.adapters.orm import drain_requests, received_webhooks


@dataclass(frozen=True)
class Pending:
    tenant_id: uuid.UUID
    max_webhook_id: int | None
    requested_at: datetime | None


async def pending(uow: UnitOfWork) -> list[Pending]:
    hooks = await uow.session.execute(
        sa.select(received_webhooks.c.tenant_id, sa.func.max(received_webhooks.c.id))
        .where(received_webhooks.c.drained_at.is_(None))
        .group_by(received_webhooks.c.tenant_id)
    )
    found: dict[uuid.UUID, Pending] = {t: Pending(t, m, None) for t, m in hooks}
    for tenant_id, requested_at in await uow.session.execute(
        sa.select(drain_requests.c.tenant_id, drain_requests.c.requested_at)
    ):
        before = found.get(tenant_id)
        found[tenant_id] = Pending(tenant_id, before.max_webhook_id if before else None, requested_at)
    return list(found.values())


async def settle(uow: UnitOfWork, request: Pending) -> None:
    """Mark what was pending before the drain began as drained (later arrivals stay pending)."""
    if request.max_webhook_id is not None:
        await uow.session.execute(
            sa.update(received_webhooks)
            .where(
                received_webhooks.c.tenant_id == request.tenant_id,
                received_webhooks.c.drained_at.is_(None),
                received_webhooks.c.id <= request.max_webhook_id,
            )
            .values(drained_at=sa.func.now())
        )
    if request.requested_at is not None:
        await uow.session.execute(
            sa.delete(drain_requests).where(
                drain_requests.c.tenant_id == request.tenant_id,
                drain_requests.c.requested_at <= request.requested_at,
            )
        )
