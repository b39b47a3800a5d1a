"""twikey connections, feed cursors and pages, feed errors, webhooks, drain requests,
transactions, pay links, command attempts

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "twikey_connections",
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
    op.create_table(
        "feed_cursors",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("feed", sa.String(20), primary_key=True),
        sa.Column("cursor", sa.BigInteger, nullable=True),
        sa.Column("messages_total", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_drain_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_drain_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "feed_pages",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("feed", sa.String(20), nullable=False),
        sa.Column("cursor_before", sa.BigInteger, nullable=True),
        sa.Column("cursor_after", sa.BigInteger, nullable=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_feed_pages_tenant_feed_time", "feed_pages", ["tenant_id", "feed", "fetched_at"])
    op.create_table(
        "feed_errors",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("feed", sa.String(20), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("message", JSONB, nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_feed_errors_tenant", "feed_errors", ["tenant_id", "id"])
    op.create_table(
        "received_webhooks",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("type", sa.String(50), nullable=True),
        sa.Column("event", sa.String(50), nullable=True),
        sa.Column("mandate_number", sa.String(50), nullable=True),
        sa.Column("drained_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_received_webhooks_tenant", "received_webhooks", ["tenant_id", "id"])
    op.create_index(
        "ix_received_webhooks_pending",
        "received_webhooks",
        ["tenant_id"],
        postgresql_where=sa.text("drained_at IS NULL"),
    )
    op.create_table(
        "drain_requests",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "twikey_transactions",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("transaction_id", sa.String(50), primary_key=True),
        sa.Column("collection_id", sa.String(100), nullable=True),
        sa.Column("mandate_number", sa.String(50), nullable=True),
        sa.Column("amount_cents", sa.BigInteger, nullable=True),
        sa.Column("last_state", sa.String(20), nullable=True),
        sa.Column("paid_seq", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index(
        "ux_twikey_transactions_collection",
        "twikey_transactions",
        ["tenant_id", "collection_id"],
        unique=True,
        postgresql_where=sa.text("collection_id IS NOT NULL"),
    )
    op.create_table(
        "twikey_paylinks",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("reference", sa.String(100), primary_key=True),
        sa.Column("paylink_id", sa.String(50), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "command_attempts",
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    for table in (
        "command_attempts",
        "twikey_paylinks",
        "twikey_transactions",
        "drain_requests",
        "received_webhooks",
        "feed_errors",
        "feed_pages",
        "feed_cursors",
        "twikey_connections",
    ):
        op.drop_table(table)
