"""twinfield connections, oauth states, bookings, customer updates

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
        "twinfield_connections",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("office", sa.String(64), nullable=True),
        sa.Column("organisation", sa.String(64), nullable=True),
        sa.Column("debtor_account", sa.String(16), nullable=False, server_default="1300"),
        sa.Column("cross_accounts", JSONB, nullable=False),
        sa.Column("memo_daybook", sa.String(16), nullable=False, server_default="MEMO"),
        sa.Column("freetext_field", sa.SmallInteger, nullable=True),
        sa.Column("refresh_token", sa.Text, nullable=True),
        sa.Column("access_token", sa.Text, nullable=True),
        sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cluster_url", sa.String(300), nullable=True),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "oauth_states",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "bookings",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("collection_id", sa.String(64), nullable=False),
        sa.Column("twikey_transaction_id", sa.String(64), nullable=True),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=True),
        sa.Column("invoice_number", sa.String(200), nullable=False),
        sa.Column("customer_number", sa.String(64), nullable=False),
        sa.Column("customer_email", sa.String(320), nullable=True),
        sa.Column("customer_name", sa.String(200), nullable=True),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("paid_on", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("paused_from", sa.String(16), nullable=True),
        sa.Column("office", sa.String(64), nullable=True),
        sa.Column("customer_code", sa.String(64), nullable=True),
        sa.Column("memo_number", sa.String(32), nullable=True),
        sa.Column("memo_line", sa.Integer, nullable=True),
        sa.Column("sales_daybook", sa.String(16), nullable=True),
        sa.Column("sales_number", sa.String(32), nullable=True),
        sa.Column("sales_line", sa.Integer, nullable=True),
        sa.Column("reverse_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("reversal_memo_number", sa.String(32), nullable=True),
        sa.Column("reversal_posting", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("reversed_on", sa.Date, nullable=True),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("hint", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("transient_failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("correlation_id", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("tenant_id", "collection_id", name="uq_bookings_tenant_collection"),
    )
    op.create_index(
        "uq_bookings_tenant_transaction",
        "bookings",
        ["tenant_id", "twikey_transaction_id"],
        unique=True,
        postgresql_where=sa.text("twikey_transaction_id IS NOT NULL"),
    )
    op.create_index("ix_bookings_due", "bookings", ["status", "next_attempt_at"])
    op.create_index("ix_bookings_tenant_status", "bookings", ["tenant_id", "status", "created_at"])
    op.create_table(
        "customer_updates",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("mandate_id", sa.String(64), nullable=False),
        sa.Column("mandate_version", sa.Integer, nullable=False),
        sa.Column("customer_code", sa.String(64), nullable=False),
        sa.Column("iban", sa.String(34), nullable=False),
        sa.Column("bic", sa.String(11), nullable=True),
        sa.Column("ascription", sa.String(200), nullable=True),
        sa.Column("mandate_number", sa.String(64), nullable=True),
        sa.Column("signature_date", sa.Date, nullable=True),
        sa.Column("scheme", sa.String(8), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_message", sa.Text, nullable=True),
        sa.Column("hint", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("tenant_id", "mandate_id", "mandate_version", name="uq_customer_updates_mandate_version"),
    )
    op.create_index("ix_customer_updates_due", "customer_updates", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("customer_updates")
    op.drop_table("bookings")
    op.drop_table("oauth_states")
    op.drop_table("twinfield_connections")
