"""mandates Koppel published (mandate.* events), for reconciliation against Twikey's mandates

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "koppel_mandates",
        sa.Column("tenant_id", sa.Uuid, primary_key=True),
        sa.Column("mandate_number", sa.String(64), primary_key=True),
        sa.Column("mandate_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    # Mandates signed before this table existed: the signed ones that reached a Twinfield
    # customer are known from customer_updates (mandate.signed with a bank account).
    op.execute(
        """
        INSERT INTO koppel_mandates (tenant_id, mandate_number, mandate_id, status, version)
        SELECT DISTINCT ON (tenant_id, mandate_number) tenant_id, mandate_number, mandate_id, 'active', mandate_version
        FROM customer_updates WHERE mandate_number IS NOT NULL
        ORDER BY tenant_id, mandate_number, mandate_version DESC
        ON CONFLICT DO NOTHING
        """
    )


def downgrade() -> None:
    op.drop_table("koppel_mandates")
