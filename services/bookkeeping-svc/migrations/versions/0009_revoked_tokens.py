"""revoked tokens: the tokens this service refuses (from token.revoked)

Revision ID: 0009
Revises: 0008
"""

from koppel_shared.revocations import create_revoked_tokens_table_v1, drop_revoked_tokens_table_v1

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_revoked_tokens_table_v1()


def downgrade() -> None:
    drop_revoked_tokens_table_v1()
