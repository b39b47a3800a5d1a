"""known tenants: the tenants this service honours tokens for (from tenant.registered)

Revision ID: 0006
Revises: 0005
"""

from koppel_shared.tenants import create_known_tenants_table_v1, drop_known_tenants_table_v1

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_known_tenants_table_v1()


def downgrade() -> None:
    drop_known_tenants_table_v1()
