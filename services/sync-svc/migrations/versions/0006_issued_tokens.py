"""issued tokens: the tokens sync-svc signed for a tenant (POST /v1/tokens, POST /v1/tenants),
listed and revoked from the browser; the token itself is never kept

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issued_tokens",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("scopes", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_issued_tokens_tenant", "issued_tokens", ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_table("issued_tokens")
