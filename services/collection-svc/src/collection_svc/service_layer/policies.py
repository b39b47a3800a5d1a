"""The tenant's collection policy and its subscriptions."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from collection_svc.adapters.orm import collection_policies, subscriptions
from collection_svc.domain.policy import CollectionPolicy, check_policy
from collection_svc.service_layer.records import load_policy
from koppel_shared.db import UnitOfWork
from koppel_shared.errors import Conflict, Invalid, NotFound


def policy_view(policy: CollectionPolicy, version: int) -> dict[str, Any]:
    view = asdict(policy)
    view["retry_r_codes"] = list(policy.retry_r_codes)
    view["version"] = version
    return view


async def get_policy(session: AsyncSession, tenant_id: uuid.UUID) -> dict[str, Any]:
    policy, version = await load_policy(session, tenant_id)
    return policy_view(policy, version)


async def put_policy(uow: UnitOfWork, tenant_id: uuid.UUID, policy: CollectionPolicy, now: datetime) -> dict[str, Any]:
    """Replace the policy. It applies to decisions taken from now on (new invoices, mandate
    changes, retries); collections already scheduled keep their date."""
    policy = CollectionPolicy(
        **{**asdict(policy), "retry_r_codes": tuple(sorted({c.strip().upper() for c in policy.retry_r_codes}))}
    )
    problems = check_policy(policy)
    if problems:
        raise Invalid.fields({"field": p.field, "rule": p.rule, "message": p.message} for p in problems)
    values = asdict(policy)
    values["retry_r_codes"] = list(policy.retry_r_codes)
    stmt = insert(collection_policies).values(tenant_id=tenant_id, version=1, updated_at=now, **values)
    upsert = stmt.on_conflict_do_update(
        index_elements=["tenant_id"],
        set_={**values, "version": collection_policies.c.version + 1, "updated_at": now},
    ).returning(collection_policies.c.version)
    version = (await uow.session.execute(upsert)).scalar_one()
    return policy_view(policy, version)


def subscription_view(row: Any) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "reference": row.reference,
        "customer_number": row.customer_number,
        "description": row.description,
        "collect_automatically": row.collect_automatically,
        "active": row.active,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


async def create_subscription(
    uow: UnitOfWork,
    tenant_id: uuid.UUID,
    reference: str,
    customer_number: str,
    description: str | None,
    collect_automatically: bool,
    now: datetime,
) -> tuple[dict[str, Any], bool]:
    """Create a subscription; the same reference with the same data answers the stored one."""
    inserted = await uow.session.execute(
        insert(subscriptions)
        .values(
            id=uuid.uuid4(),
            tenant_id=tenant_id,
            reference=reference,
            customer_number=customer_number,
            description=description,
            collect_automatically=collect_automatically,
            active=True,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
        .returning(*subscriptions.c)
    )
    row = inserted.first()
    if row is not None:
        return subscription_view(row), True
    existing = (
        await uow.session.execute(
            sa.select(subscriptions).where(
                subscriptions.c.tenant_id == tenant_id, subscriptions.c.reference == reference
            )
        )
    ).one()
    same = (existing.customer_number, existing.description, existing.collect_automatically) == (
        customer_number,
        description,
        collect_automatically,
    )
    if not same:
        raise Conflict(
            "subscription_reference_conflict",
            f"subscription {reference} exists with different data",
            subscription_id=str(existing.id),
        )
    return subscription_view(existing), False


async def get_subscription(session: AsyncSession, tenant_id: uuid.UUID, subscription_id: uuid.UUID) -> Any:
    row = (
        await session.execute(
            sa.select(subscriptions).where(
                subscriptions.c.tenant_id == tenant_id, subscriptions.c.id == subscription_id
            )
        )
    ).first()
    if row is None:
        raise NotFound("subscription_not_found", f"no subscription {subscription_id}")
    return row


async def update_subscription(
    uow: UnitOfWork,
    tenant_id: uuid.UUID,
    subscription_id: uuid.UUID,
    changes: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    await get_subscription(uow.session, tenant_id, subscription_id)
    row = (
        await uow.session.execute(
            sa.update(subscriptions)
            .where(subscriptions.c.tenant_id == tenant_id, subscriptions.c.id == subscription_id)
            .values(**changes, updated_at=now)
            .returning(*subscriptions.c)
        )
    ).one()
    return subscription_view(row)


async def list_subscriptions(
    session: AsyncSession, tenant_id: uuid.UUID, customer_number: str | None
) -> list[dict[str, Any]]:
    stmt = sa.select(subscriptions).where(subscriptions.c.tenant_id == tenant_id)
    if customer_number:
        stmt = stmt.where(subscriptions.c.customer_number == customer_number)
    rows = (await session.execute(stmt.order_by(subscriptions.c.created_at, subscriptions.c.id).limit(1000))).all()
    return [subscription_view(r) for r in rows]
