"""mandates and idempotency keys

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mandates",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("tenant_id", UUID(as_uuid=False), nullable=False),
        sa.Column("customer_number", sa.Text, nullable=False),
        sa.Column("scheme", sa.Text, nullable=False),
        sa.Column("base_status", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
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
    )
    op.create_index(
        "mandates_tenant_number_uq",
        "mandates",
        ["tenant_id", "mandate_number"],
        unique=True,
        postgresql_where=sa.text("mandate_number IS NOT NULL"),
    )
    op.create_index("mandates_tenant_customer_ix", "mandates", ["tenant_id", "customer_number"])
    op.create_index("mandates_tenant_created_ix", "mandates", ["tenant_id", "created_at", "id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("mandate_id", UUID(as_uuid=False), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("mandates")
