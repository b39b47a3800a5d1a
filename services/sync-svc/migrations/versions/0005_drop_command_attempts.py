"""drop command_attempts: the shared consumer tells a command handler its attempt number

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
    op.drop_table("command_attempts")


def downgrade() -> None:
    op.create_table(
        "command_attempts",
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
