"""collections by submission and payment time: the overview's collected and paid per day

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_collections_submitted",
        "collections",
        ["tenant_id", "submitted_at"],
        postgresql_where=sa.text("submitted_at IS NOT NULL"),
    )
    op.create_index(
        "ix_collections_paid", "collections", ["tenant_id", "paid_at"], postgresql_where=sa.text("paid_at IS NOT NULL")
    )


def downgrade() -> None:
    op.drop_index("ix_collections_paid", table_name="collections")
    op.drop_index("ix_collections_submitted", table_name="collections")
