"""An event arrives: it joins the tenant's event log and a delivery is queued for every enabled
endpoint of the tenant subscribed to its type — in the consumer's transaction, so the inbox row,
the log entry and the deliveries commit together. Idempotent on the event id as well as the inbox:
a second copy of an event (a feed reset upstream replays with the same id) changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
from koppel_shared.logging import get_logger
from notify_svc.adapters.orm import deliveries, events, webhook_endpoints
from notify_svc.domain.payload import webhook_payload
from notify_svc.domain.subscriptions import subscribed

log = get_logger(__name__)

WAKE_CHANNEL = "koppel_notify_deliveries"
_WAKE = sa.text(f"NOTIFY {WAKE_CHANNEL}")  # delivered on commit: the dispatcher claims at once


async def wake_dispatchers(uow: UnitOfWork) -> None:
    await uow.session.execute(_WAKE)


async def record_event(uow: UnitOfWork, envelope: Envelope) -> int:
    """Store the event and queue its deliveries; returns how many deliveries were queued."""
    if envelope.tenant_id is None:
        log.warning("notify.event_without_tenant", event_type=envelope.type)
        return 0
    payload = webhook_payload(
        event_id=str(envelope.id),
        event_type=envelope.type,
        version=envelope.version,
        tenant_id=str(envelope.tenant_id),
        occurred_at=envelope.occurred_at,
        correlation_id=envelope.correlation_id,
        data=envelope.data,
    )
    inserted = await uow.session.execute(
        insert(events)
        .values(
            tenant_id=envelope.tenant_id,
            event_id=envelope.id,
            type=envelope.type,
            occurred_at=envelope.occurred_at,
            payload=payload,
        )
        .on_conflict_do_nothing(constraint="uq_events_tenant_event")
        .returning(events.c.seq)
    )
    seq = inserted.scalar_one_or_none()
    if seq is None:
        return 0
    endpoints = await uow.session.execute(
        sa.select(webhook_endpoints.c.id, webhook_endpoints.c.event_types).where(
            webhook_endpoints.c.tenant_id == envelope.tenant_id, webhook_endpoints.c.enabled
        )
    )
    rows: list[dict[str, Any]] = [
        {
            "id": uuid.uuid4(),
            "tenant_id": envelope.tenant_id,
            "endpoint_id": e.id,
            "event_seq": seq,
            "event_id": envelope.id,
            "event_type": envelope.type,
            "status": "pending",
            "next_attempt_at": sa.func.now(),
        }
        for e in endpoints
        if subscribed(e.event_types, envelope.type)
    ]
    if rows:
        await uow.session.execute(sa.insert(deliveries).values(rows))
        await wake_dispatchers(uow)
    return len(rows)
