"""bookings by booking time: the overview's booked per day and its latency

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_bookings_tenant_booked_at",
        "bookings",
        ["tenant_id", "booked_at"],
        postgresql_where=sa.text("booked_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_bookings_tenant_booked_at", table_name="bookings")
