"""invoices, collections, policies, subscriptions, mandate projection, pay links

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

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "collection_policies",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("auto_collect", sa.Boolean, nullable=False),
        sa.Column("lead_days", sa.Integer, nullable=False),
        sa.Column("max_amount_cents", sa.BigInteger, nullable=True),
        sa.Column("notify_debtor", sa.Boolean, nullable=False),
        sa.Column("paylink_when_no_mandate", sa.Boolean, nullable=False),
        sa.Column("retry_r_codes", JSONB, nullable=False),
        sa.Column("retry_after_days", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "mandates",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("mandate_key", sa.String(100), primary_key=True),
        sa.Column("customer_number", sa.String(100), nullable=False),
        sa.Column("mandate_number", sa.String(100), nullable=True),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("max_amount_cents", sa.BigInteger, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_mandates_customer", "mandates", ["tenant_id", "customer_number"])
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("reference", sa.String(100), nullable=False),
        sa.Column("customer_number", sa.String(100), nullable=False),
        sa.Column("description", sa.String(200), nullable=True),
        sa.Column("collect_automatically", sa.Boolean, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("tenant_id", "reference", name="uq_subscriptions_reference"),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("invoice_number", sa.String(100), nullable=False),
        sa.Column("customer_number", sa.String(100), nullable=False),
        sa.Column("customer_name", sa.String(200), nullable=True),
        sa.Column("customer_email", sa.String(320), nullable=True),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("invoice_date", sa.Date, nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("description", sa.String(140), nullable=True),
        sa.Column("subscription_reference", sa.String(100), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("withdrawn_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("tenant_id", "invoice_number", name="uq_invoices_number"),
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_invoices_idempotency_key"),
    )
    op.create_index("ix_invoices_customer", "invoices", ["tenant_id", "customer_number"])
    op.create_index("ix_invoices_list", "invoices", ["tenant_id", "seq"])
    op.create_table(
        "collections",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("invoice_id", sa.Uuid, sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("method", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason_code", sa.String(50), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("mandate_number", sa.String(100), nullable=True),
        sa.Column("collect_on", sa.Date, nullable=True),
        sa.Column("requested_date", sa.Date, nullable=True),
        sa.Column("twikey_transaction_id", sa.String(100), nullable=True),
        sa.Column("r_code", sa.String(10), nullable=True),
        sa.Column("last_feed_seq", sa.BigInteger, nullable=True),
        sa.Column("submitted_at", TZ, nullable=True),
        sa.Column("paid_at", TZ, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("invoice_id", "attempt", name="uq_collections_invoice_attempt"),
    )
    op.create_index(
        "ix_collections_due", "collections", ["collect_on"], postgresql_where=sa.text("status = 'scheduled'")
    )
    op.create_index("ix_collections_tenant_invoice", "collections", ["tenant_id", "invoice_id"])
    op.create_index("ix_collections_tx", "collections", ["tenant_id", "twikey_transaction_id"])
    op.create_index(
        "uq_collections_one_live_debit",
        "collections",
        ["invoice_id"],
        unique=True,
        postgresql_where=sa.text("method = 'direct_debit' AND status IN ('scheduled', 'submitted', 'paid')"),
    )
    op.create_table(
        "pay_links",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("invoice_id", sa.Uuid, sa.ForeignKey("invoices.id"), nullable=False, unique=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("paylink_id", sa.String(100), nullable=True),
        sa.Column("url", sa.Text, nullable=True),
        sa.Column("mandate_number", sa.String(100), nullable=True),
        sa.Column("last_feed_seq", sa.BigInteger, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "twikey_updates",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("correlation_id", sa.String(200), nullable=True),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("received_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("failed_at", TZ, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("twikey_updates")
    op.drop_table("pay_links")
    op.drop_table("collections")
    op.drop_table("invoices")
    op.drop_table("subscriptions")
    op.drop_table("mandates")
    op.drop_table("collection_policies")
