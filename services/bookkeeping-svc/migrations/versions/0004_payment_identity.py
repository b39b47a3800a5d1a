"""payment identity: bookings keyed by (tenant, kind, twikey id); booking conflicts

Twikey numbers transactions and pay links separately, so a booking is unique per
(tenant, payment_kind, twikey_id), no longer per (tenant, twikey_transaction_id). Existing rows
are backfilled from ``method`` and ``twikey_transaction_id``; pay-link rows lose their
``twikey_transaction_id`` (it held the pay-link id). ``reference`` keeps what was posted to
Twinfield (old MEMOs are found by it); it is widened for the kind-qualified references.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("bookings", sa.Column("payment_kind", sa.String(16), nullable=True))
    op.add_column("bookings", sa.Column("twikey_id", sa.String(64), nullable=True))
    op.execute(
        "UPDATE bookings SET payment_kind = CASE WHEN method = 'paylink' THEN 'paylink' ELSE 'transaction' END, "
        "twikey_id = twikey_transaction_id"
    )
    op.execute("UPDATE bookings SET twikey_transaction_id = NULL WHERE payment_kind = 'paylink'")
    op.alter_column("bookings", "payment_kind", nullable=False)
    op.alter_column("bookings", "reference", type_=sa.String(100))
    op.drop_index("uq_bookings_tenant_transaction", table_name="bookings")
    op.create_index(
        "uq_bookings_tenant_payment",
        "bookings",
        ["tenant_id", "payment_kind", "twikey_id"],
        unique=True,
        postgresql_where=sa.text("twikey_id IS NOT NULL"),
    )
    op.create_table(
        "booking_conflicts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("tenant_id", sa.Uuid, nullable=False),
        sa.Column("booking_id", sa.Uuid, sa.ForeignKey("bookings.id"), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("differences", JSONB, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("collection_id", sa.String(64), nullable=False),
        sa.Column("payment_kind", sa.String(16), nullable=False),
        sa.Column("twikey_id", sa.String(64), nullable=True),
        sa.Column("amount_cents", sa.BigInteger, nullable=False),
        sa.Column("invoice_number", sa.String(200), nullable=False),
        sa.Column("incoming", JSONB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("resolved_booking_id", sa.Uuid, nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("correlation_id", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("tenant_id", "fingerprint", name="uq_booking_conflicts_fingerprint"),
    )
    op.create_index("ix_booking_conflicts_tenant_status", "booking_conflicts", ["tenant_id", "status", "created_at"])


def downgrade() -> None:
    op.drop_table("booking_conflicts")
    op.drop_index("uq_bookings_tenant_payment", table_name="bookings")
    op.execute(
        "UPDATE bookings SET twikey_transaction_id = twikey_id WHERE payment_kind = 'paylink' "
        "AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.tenant_id = bookings.tenant_id "
        "AND b.payment_kind = 'transaction' AND b.twikey_id = bookings.twikey_id)"
    )
    op.create_index(
        "uq_bookings_tenant_transaction",
        "bookings",
        ["tenant_id", "twikey_transaction_id"],
        unique=True,
        postgresql_where=sa.text("twikey_transaction_id IS NOT NULL"),
    )
    op.alter_column("bookings", "reference", type_=sa.String(64), postgresql_using="left(reference, 64)")
    op.drop_column("bookings", "twikey_id")
    op.drop_column("bookings", "payment_kind")
