"""reconciliation runs and their differences

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = True) -> sa.Column:
    default = None if nullable else sa.func.now()
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=default)


def upgrade() -> None:
    empty_object = sa.text("'{}'::jsonb")
    op.create_table(
        "reconcile_runs",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("night", sa.Date, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("since", sa.Date, nullable=False),
        sa.Column("until", sa.Date, nullable=False),
        sa.Column("progress", JSONB, nullable=False, server_default=empty_object),
        sa.Column("differences", sa.Integer, nullable=False, server_default="0"),
        sa.Column("open_differences", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text, nullable=True),
        _when("requested_at", nullable=False),
        _when("started_at"),
        _when("heartbeat_at"),
        _when("finished_at"),
    )
    op.create_index("ix_reconcile_runs_tenant", "reconcile_runs", ["tenant_id", "requested_at"])
    op.create_index("ix_reconcile_runs_status", "reconcile_runs", ["status", "requested_at"])
    op.create_index(
        "uq_reconcile_runs_night",
        "reconcile_runs",
        ["tenant_id", "night"],
        unique=True,
        postgresql_where=sa.text("night IS NOT NULL"),
    )
    op.create_table(
        "reconcile_differences",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("run_id", sa.Uuid, sa.ForeignKey("reconcile_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("payment_kind", sa.String(16), nullable=True),
        sa.Column("twikey_id", sa.String(64), nullable=True),
        sa.Column("booking_id", sa.Uuid, nullable=True),
        sa.Column("amount_cents", sa.BigInteger, nullable=True),
        sa.Column("twikey", JSONB, nullable=True),
        sa.Column("koppel", JSONB, nullable=True),
        sa.Column("twinfield", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("fix", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        _when("created_at", nullable=False),
        _when("resolved_at"),
        sa.UniqueConstraint("run_id", "kind", "key", name="uq_reconcile_differences_run_key"),
    )
    op.create_index("ix_reconcile_differences_tenant_key", "reconcile_differences", ["tenant_id", "kind", "key"])


def downgrade() -> None:
    op.drop_table("reconcile_differences")
    op.drop_table("reconcile_runs")
