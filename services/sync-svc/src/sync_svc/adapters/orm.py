"""sync-svc's tables (its own database; no other service reads them). Every table carries
``tenant_id`` and every query filters on it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from koppel_shared.messaging.tables import metadata as messaging_metadata

metadata = sa.MetaData()

# One Twikey connection per tenant. Secrets are Fernet tokens (runtime.secrets), never plain.
twikey_connections = sa.Table(
    "twikey_connections",
    metadata,
    sa.Column("tenant_id", sa.Uuid, primary_key=True),
    sa.Column("api_key_enc", sa.Text, nullable=False),
    sa.Column("private_key_enc", sa.Text, nullable=True),
    sa.Column("base_url", sa.String(500), nullable=False),
    sa.Column("core_template_id", sa.String(50), nullable=True),
    sa.Column("b2b_template_id", sa.String(50), nullable=True),
    sa.Column("notify_before_collection", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("merchant_id", sa.String(50), nullable=True),
    sa.Column("last_test_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_test_ok", sa.Boolean, nullable=True),
    sa.Column("last_test_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Our position in each of Twikey's feeds: the last sequence number turned into events.
# NULL = never read: the first read follows Twikey's server-side queue (no X-RESUME-AFTER).
feed_cursors = sa.Table(
    "feed_cursors",
    metadata,
    sa.Column("tenant_id", sa.Uuid, primary_key=True),
    sa.Column("feed", sa.String(20), primary_key=True),
    sa.Column("cursor", sa.BigInteger, nullable=True),
    sa.Column("messages_total", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_drain_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_drain_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
)

# One row per non-empty page read: lets a reset "since <moment>" find the cursor to go back to.
feed_pages = sa.Table(
    "feed_pages",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("feed", sa.String(20), nullable=False),
    sa.Column("cursor_before", sa.BigInteger, nullable=True),
    sa.Column("cursor_after", sa.BigInteger, nullable=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_feed_pages_tenant_feed_time", "tenant_id", "feed", "fetched_at"),
)

# Feed messages that could not be turned into an event, with the reason (the drainer moves on).
feed_errors = sa.Table(
    "feed_errors",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("feed", sa.String(20), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("message", JSONB, nullable=True),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_feed_errors_tenant", "tenant_id", "id"),
)

# Verified webhooks. A row with drained_at NULL is also the request to drain that tenant's feeds:
# the hot path is a single INSERT (no contended per-tenant row), and the worker coalesces.
received_webhooks = sa.Table(
    "received_webhooks",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("type", sa.String(50), nullable=True),
    sa.Column("event", sa.String(50), nullable=True),
    sa.Column("mandate_number", sa.String(50), nullable=True),
    sa.Column("drained_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_received_webhooks_tenant", "tenant_id", "id"),
    sa.Index("ix_received_webhooks_pending", "tenant_id", postgresql_where=sa.text("drained_at IS NULL")),
)

# Drain requests that do not come from a webhook (feed reset, operator).
drain_requests = sa.Table(
    "drain_requests",
    metadata,
    sa.Column("tenant_id", sa.Uuid, primary_key=True),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Transactions we created at Twikey (by our collection id) and what the feed said about them:
# the record that makes collect commands exactly-once, and the memory that tells a reversal
# (ERROR after PAID) from a plain failure.
twikey_transactions = sa.Table(
    "twikey_transactions",
    metadata,
    sa.Column("tenant_id", sa.Uuid, primary_key=True),
    sa.Column("transaction_id", sa.String(50), primary_key=True),
    sa.Column("collection_id", sa.String(100), nullable=True),
    sa.Column("mandate_number", sa.String(50), nullable=True),
    sa.Column("amount_cents", sa.BigInteger, nullable=True),
    sa.Column("last_state", sa.String(20), nullable=True),
    sa.Column("paid_seq", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index(
        "ux_twikey_transactions_collection",
        "tenant_id",
        "collection_id",
        unique=True,
        postgresql_where=sa.text("collection_id IS NOT NULL"),
    ),
)

# Pay links we created, by our reference (exactly-once for paylink commands).
twikey_paylinks = sa.Table(
    "twikey_paylinks",
    metadata,
    sa.Column("tenant_id", sa.Uuid, primary_key=True),
    sa.Column("reference", sa.String(100), primary_key=True),
    sa.Column("paylink_id", sa.String(50), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Invites sent to Twikey under a mandate number we chose, so that a second attempt whose first
# one's outcome is unknown looks the mandate up instead of inviting again. status: sending (sent,
# no answer yet or outcome unknown), unsent (certainly not made at Twikey: may be sent again),
# done (Twikey has it; sign_url when its answer reached us).
twikey_invites = sa.Table(
    "twikey_invites",
    metadata,
    sa.Column("tenant_id", sa.Uuid, primary_key=True),
    sa.Column("mandate_number", sa.String(35), primary_key=True),
    sa.Column("reference", sa.String(100), nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("sign_url", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Attempts per command event, counted outside the handler's transaction (which rolls back on
# failure), so the last attempt can answer "unavailable" instead of dead-lettering silently.
command_attempts = sa.Table(
    "command_attempts",
    metadata,
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# The tokens sync-svc signed for a tenant (``/v1/tokens``): what they were for, never the token.
# ``id`` is the token's ``jti``; ``scopes`` space-separated as in the token.
issued_tokens = sa.Table(
    "issued_tokens",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("label", sa.String(100), nullable=False),
    sa.Column("scopes", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_issued_tokens_tenant", "tenant_id", "created_at"),
)

TARGET_METADATA = (metadata, messaging_metadata)
