"""the tenant's transliteration opt-in; an invoice number is unique among live invoices only

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
    op.add_column(
        "collection_policies",
        sa.Column("transliterate_text", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    # A withdrawn invoice frees its number: the ERP can post the corrected invoice again.
    op.drop_constraint("uq_invoices_number", "invoices", type_="unique")
    op.create_index(
        "uq_invoices_number_live",
        "invoices",
        ["tenant_id", "invoice_number"],
        unique=True,
        postgresql_where=sa.text("withdrawn_at IS NULL"),
    )
    op.create_index("ix_invoices_number", "invoices", ["tenant_id", "invoice_number"])


def downgrade() -> None:
    op.drop_index("ix_invoices_number", "invoices")
    op.drop_index("uq_invoices_number_live", "invoices")
    op.create_unique_constraint("uq_invoices_number", "invoices", ["tenant_id", "invoice_number"])
    op.drop_column("collection_policies", "transliterate_text")
