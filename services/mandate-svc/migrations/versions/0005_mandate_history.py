"""mandate history: what happened to each mandate, kept as long as the mandate; filled from the
events still in the outbox

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mandate_history",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", UUID(as_uuid=False), nullable=False),
        sa.Column("mandate_id", UUID(as_uuid=False), nullable=False),
        sa.Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("status", sa.Text),
        sa.Column("action", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("mandate_history_mandate_ix", "mandate_history", ["tenant_id", "mandate_id", "seq"])
    # The mandates' events the outbox still holds (it keeps sent ones for days): their history so far.
    op.execute(
        """INSERT INTO mandate_history (tenant_id, mandate_id, event_id, type, status, reason, occurred_at)
           SELECT o.tenant_id, (o.body::jsonb -> 'data' ->> 'mandate_id')::uuid, o.id, o.type,
                  o.body::jsonb -> 'data' ->> 'status', o.body::jsonb -> 'data' ->> 'reason', o.occurred_at
           FROM outbox o
           WHERE o.type LIKE 'mandate.%' AND o.tenant_id IS NOT NULL AND o.body::jsonb -> 'data' ? 'mandate_id'
           ORDER BY o.seq"""
    )


def downgrade() -> None:
    op.drop_table("mandate_history")
