"""A signed sample event for one webhook endpoint, so an ERP developer (or the console's settings
page) can see that the endpoint receives and verifies Koppel's webhooks.

The sample is an event of type ``koppel.test`` in the tenant's event log with one delivery to that
endpoint: the dispatcher sends and signs it like every delivery (Standard Webhooks headers, the
endpoint's secret, retries), and the delivery log shows it. It is no business event: the event
feed (``GET /v1/events``) never lists it and a redelivery by time range leaves it out.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from koppel_shared.db import UnitOfWork
from koppel_shared.web.errors import Problem
from notify_svc.adapters.orm import deliveries, events
from notify_svc.domain.payload import webhook_payload
from notify_svc.service_layer.endpoints import get_endpoint
from notify_svc.service_layer.ingest import wake_dispatchers

TEST_EVENT_TYPE = "koppel.test"


async def send_sample(
    uow: UnitOfWork, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, correlation_id: str | None
) -> dict[str, str]:
    """Queue the sample for the endpoint (404 for another tenant's, 409 while it is disabled)."""
    endpoint = await get_endpoint(uow, tenant_id, endpoint_id)
    if not endpoint["enabled"]:
        raise Problem(409, "endpoint_disabled", "enable the endpoint before sending it a test event")
    event_id, delivery_id = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    payload = webhook_payload(
        event_id=str(event_id),
        event_type=TEST_EVENT_TYPE,
        version=1,
        tenant_id=str(tenant_id),
        occurred_at=now,
        correlation_id=correlation_id,
        data={
            "endpoint_id": str(endpoint_id),
            "message": "A test event from Koppel: this endpoint receives and can verify Koppel's webhooks.",
            "sent_at": now.isoformat(),
        },
    )
    seq = (
        await uow.session.execute(
            sa.insert(events)
            .values(tenant_id=tenant_id, event_id=event_id, type=TEST_EVENT_TYPE, occurred_at=now, payload=payload)
            .returning(events.c.seq)
        )
    ).scalar_one()
    await uow.session.execute(
        sa.insert(deliveries).values(
            id=delivery_id,
            tenant_id=tenant_id,
            endpoint_id=endpoint_id,
            event_seq=seq,
            event_id=event_id,
            event_type=TEST_EVENT_TYPE,
            status="pending",
            manual=True,
            next_attempt_at=sa.func.now(),
        )
    )
    await wake_dispatchers(uow)
    await uow.commit()
    return {"delivery_id": str(delivery_id), "event_id": str(event_id)}
