"""The outbox and inbox tables every service database has, and the migration step creating them.

They live in their own ``MetaData`` so a service's Alembic env can target both its own tables and
these. The migration step spells the tables out instead of calling ``create_all`` so that an old
migration keeps producing the same schema after these definitions change.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("id", sa.Uuid, nullable=False, unique=True),
    sa.Column("type", sa.String(200), nullable=False),
    sa.Column("tenant_id", sa.Uuid, nullable=True),
    # The envelope as the JSON text that is published, so the relay sends it as is.
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("correlation_id", sa.String(200), nullable=True),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Index("ix_outbox_unsent", "seq", postgresql_where=sa.text("sent_at IS NULL")),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("consumer", sa.String(200), primary_key=True),
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)


def create_messaging_tables_v1() -> None:
    """Alembic step: create ``outbox`` and ``inbox`` (call from a service's first migration)."""
    from alembic import op

    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("id", sa.Uuid, nullable=False, unique=True),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("tenant_id", sa.Uuid, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("correlation_id", sa.String(200), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_outbox_unsent", "outbox", ["seq"], postgresql_where=sa.text("sent_at IS NULL"))
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def drop_messaging_tables_v1() -> None:
    from alembic import op

    op.drop_table("inbox")
    op.drop_table("outbox")
