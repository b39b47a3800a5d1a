"""revoked tokens: the tokens this service refuses (from token.revoked)

Revision ID: 0007
Revises: 0006
"""

from koppel_shared.revocations import create_revoked_tokens_table_v1, drop_revoked_tokens_table_v1

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_revoked_tokens_table_v1()


def downgrade() -> None:
    drop_revoked_tokens_table_v1()
