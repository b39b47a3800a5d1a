"""mandate-svc's tables (its own database; no other service reads them)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from koppel_shared.messaging.tables import metadata as messaging_metadata

metadata = sa.MetaData()

mandates = sa.Table(
    "mandates",
    metadata,
    sa.Column("id", UUID(as_uuid=False), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=False), nullable=False),
    sa.Column("customer_number", sa.Text, nullable=False),
    sa.Column("scheme", sa.Text, nullable=False),
    sa.Column("base_status", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # derived (base + pending action), kept for filters
    sa.Column("pending_action", sa.Text),
    sa.Column("delivery", sa.Text),
    sa.Column("mandate_number", sa.Text),
    sa.Column("sign_url", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("company_name", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("mobile", sa.Text),
    sa.Column("language", sa.Text),
    sa.Column("address", sa.Text),
    sa.Column("zip", sa.Text),
    sa.Column("city", sa.Text),
    sa.Column("country", sa.Text),
    sa.Column("iban", sa.Text),
    sa.Column("bic", sa.Text),
    sa.Column("max_amount_cents", sa.BigInteger),
    sa.Column("signature_date", sa.Date),
    sa.Column("sign_method", sa.Text),
    sa.Column("sign_place", sa.Text),
    sa.Column("signer", sa.Text),
    sa.Column("contract_number", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("last_error", JSONB),
    sa.Column("signed_at", sa.DateTime(timezone=True)),
    sa.Column("feed_event_time", sa.DateTime(timezone=True)),
    sa.Column("feed_seq", sa.BigInteger),
    sa.Column("field_stamps", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index(
        "mandates_tenant_number_uq",
        "tenant_id",
        "mandate_number",
        unique=True,
        postgresql_where=sa.text("mandate_number IS NOT NULL"),
    ),
    sa.Index("mandates_tenant_customer_ix", "tenant_id", "customer_number"),
    sa.Index("mandates_tenant_created_ix", "tenant_id", "created_at", "id"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=False), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("request_hash", sa.Text, nullable=False),
    sa.Column("mandate_id", UUID(as_uuid=False), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # While set and in the future, a request with this key is inviting at Twikey: another one waits.
    sa.Column("lease_until", sa.DateTime(timezone=True)),
)

# Mandates Twikey's feed told us about that Koppel did not create: the operator adopts or ignores
# them. ``messages`` are the feed messages as received (JSON), replayed in order on adoption.
unclaimed_mandates = sa.Table(
    "unclaimed_mandates",
    metadata,
    sa.Column("tenant_id", UUID(as_uuid=False), primary_key=True),
    sa.Column("mandate_number", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),  # open | adopted | ignored
    sa.Column("messages", JSONB, nullable=False),
    sa.Column("mandate_id", UUID(as_uuid=False)),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Index("unclaimed_mandates_tenant_status_ix", "tenant_id", "status", "first_seen_at"),
)

# What happened to each mandate, written with the events it published (in the same transaction):
# the operator's history of a mandate, kept for as long as the mandate (the outbox forgets).
mandate_history = sa.Table(
    "mandate_history",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", UUID(as_uuid=False), nullable=False),
    sa.Column("mandate_id", UUID(as_uuid=False), nullable=False),
    sa.Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    sa.Column("type", sa.Text, nullable=False),  # mandate.signed, or the command sent to Twikey
    sa.Column("status", sa.Text),  # after an event
    sa.Column("action", sa.Text),  # of a command: cancel, suspend, resume, remind
    sa.Column("reason", sa.Text),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("mandate_history_mandate_ix", "tenant_id", "mandate_id", "seq"),
)

TARGET_METADATA = (metadata, messaging_metadata)
