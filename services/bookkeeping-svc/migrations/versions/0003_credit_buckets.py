"""twinfield credit buckets shared by every worker

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "twinfield_credit_buckets",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("capacity", sa.Float, nullable=False),
        sa.Column("per_second", sa.Float, nullable=False),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("twinfield_credit_buckets")
