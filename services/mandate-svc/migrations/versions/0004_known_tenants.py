"""known tenants: the tenants this service honours tokens for (from tenant.registered)

Revision ID: 0004
Revises: 0003
"""

from koppel_shared.tenants import create_known_tenants_table_v1, drop_known_tenants_table_v1

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_known_tenants_table_v1()


def downgrade() -> None:
    drop_known_tenants_table_v1()
