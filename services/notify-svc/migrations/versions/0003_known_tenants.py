"""known tenants: the tenants this service honours tokens for (from tenant.registered)

Revision ID: 0003
Revises: 0002
"""

from koppel_shared.tenants import create_known_tenants_table_v1, drop_known_tenants_table_v1

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_known_tenants_table_v1()


def downgrade() -> None:
    drop_known_tenants_table_v1()
