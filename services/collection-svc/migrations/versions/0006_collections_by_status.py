"""collections by status: the invoice list filtered by a status few invoices are in

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_collections_status", "collections", ["tenant_id", "status", "invoice_id"])


def downgrade() -> None:
    op.drop_index("ix_collections_status", table_name="collections")
