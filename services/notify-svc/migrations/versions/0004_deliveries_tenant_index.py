"""deliveries by tenant, newest first: the delivery log's pages (without an endpoint filter)

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_tenant_seq", "deliveries", ["tenant_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_tenant_seq", table_name="deliveries")
