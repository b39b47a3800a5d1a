"""notify-svc's tables (its own database; no other service reads them).

- ``webhook_endpoints``: per tenant URL, subscribed patterns, encrypted secret (and the previous one
  during a rotation), enabled/disabled with the reason, and the failure streak that disables it;
- ``events``: the tenant's event log — the payload exactly as delivered — and the feed position
  (``feed_seq``), given when the feed is read (see ``service_layer.feed``);
- ``deliveries``: one per (event, endpoint) and per manual redelivery, with its state and schedule;
- ``delivery_attempts``: the delivery log, one row per HTTP attempt.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from koppel_shared.messaging.tables import metadata as messaging_metadata

metadata = sa.MetaData()

TS = sa.DateTime(timezone=True)

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False, index=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("event_types", ARRAY(sa.Text), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column("disabled_at", TS, nullable=True),
    sa.Column("secret", sa.Text, nullable=False),  # encrypted
    sa.Column("previous_secret", sa.Text, nullable=True),  # encrypted, valid until previous_secret_until
    sa.Column("previous_secret_until", TS, nullable=True),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failing_since", TS, nullable=True),
    sa.Column("last_success_at", TS, nullable=True),
    sa.Column("last_failure_at", TS, nullable=True),
    sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", TS, nullable=False, server_default=sa.func.now()),
)

feed_seq = sa.Sequence("events_feed_seq", metadata=metadata)

events = sa.Table(
    "events",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=False),
    sa.Column("type", sa.String(200), nullable=False),
    sa.Column("occurred_at", TS, nullable=False),
    sa.Column("received_at", TS, nullable=False, server_default=sa.func.now()),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("feed_seq", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("tenant_id", "event_id", name="uq_events_tenant_event"),
    sa.Index("ix_events_feed", "tenant_id", "feed_seq", unique=True),
    sa.Index("ix_events_unsequenced", "tenant_id", "seq", postgresql_where=sa.text("feed_seq IS NULL")),
    sa.Index("ix_events_tenant_received", "tenant_id", "received_at"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("id", sa.Uuid, nullable=False, unique=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("endpoint_id", sa.Uuid, sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event_seq", sa.BigInteger, sa.ForeignKey("events.seq", ondelete="CASCADE"), nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=False),
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # pending|succeeded|failed|cancelled
    sa.Column("manual", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", TS, nullable=True),
    sa.Column("last_attempt_at", TS, nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("completed_at", TS, nullable=True),
    sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
    sa.Index("ix_deliveries_due", "endpoint_id", "next_attempt_at", postgresql_where=sa.text("status = 'pending'")),
    sa.Index("ix_deliveries_endpoint", "tenant_id", "endpoint_id", "seq"),
    sa.Index("ix_deliveries_tenant_seq", "tenant_id", "seq"),
    sa.Index("ix_deliveries_event", "event_seq"),
)

delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("delivery_id", sa.Uuid, sa.ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("started_at", TS, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("response_excerpt", sa.Text, nullable=True),
)

TARGET_METADATA = (metadata, messaging_metadata)
