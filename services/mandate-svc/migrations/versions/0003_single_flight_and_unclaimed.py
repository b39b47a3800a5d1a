"""idempotency key leases (one request in flight per key) and unclaimed mandates

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("idempotency_keys", sa.Column("lease_until", sa.DateTime(timezone=True)))
    op.create_table(
        "unclaimed_mandates",
        sa.Column("tenant_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("mandate_number", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("messages", JSONB, nullable=False),
        sa.Column("mandate_id", UUID(as_uuid=False)),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
    )
    op.create_index("unclaimed_mandates_tenant_status_ix", "unclaimed_mandates", ["tenant_id", "status", "first_seen_at"])


def downgrade() -> None:
    op.drop_table("unclaimed_mandates")
    op.drop_column("idempotency_keys", "lease_until")
