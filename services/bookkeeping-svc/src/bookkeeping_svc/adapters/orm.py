"""bookkeeping-svc's tables (its own database; no other service reads them).

- ``twinfield_connections``: one per tenant: office, accounts, the encrypted refresh token and
  the cached (encrypted) access token with its expiry and cluster URL; the row is also the lock
  that makes token refresh single-flight across workers (``SELECT … FOR UPDATE``).
- ``oauth_states``: the signed ``state`` of each connect attempt, single use.
- ``bookings``: one per (tenant, collection) and per paid item at Twikey (tenant, kind, Twikey
  id): the database half of "never twice".
- ``booking_conflicts``: a paid item announced again with other facts (domain/identity.py), kept
  with both records until an operator dismisses it or books the incoming one.
- ``customer_updates``: bank account + collect mandate to put on a Twinfield customer.
- ``twinfield_credit_buckets``: the fair-use credits every worker spends from (see credits.py).
- ``reconcile_runs`` / ``reconcile_differences``: reconciliation against Twikey's and
  Twinfield's own records (see service_layer/reconcile.py).
- ``koppel_mandates``: every mandate number mandate-svc published (``mandate.*`` events), so
  reconciliation knows which of Twikey's mandates are Koppel's.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from koppel_shared.messaging.tables import metadata as messaging_metadata

metadata = sa.MetaData()

connections = sa.Table(
    "twinfield_connections",
    metadata,
    sa.Column("tenant_id", sa.Uuid, primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),  # not_connected|connected|consent_lost
    sa.Column("status_reason", sa.Text, nullable=True),
    sa.Column("office", sa.String(64), nullable=True),
    sa.Column("organisation", sa.String(64), nullable=True),
    sa.Column("debtor_account", sa.String(16), nullable=False, server_default="1300"),
    sa.Column("cross_accounts", JSONB, nullable=False),
    sa.Column("memo_daybook", sa.String(16), nullable=False, server_default="MEMO"),
    sa.Column("freetext_field", sa.SmallInteger, nullable=True),
    sa.Column("refresh_token", sa.Text, nullable=True),  # encrypted
    sa.Column("access_token", sa.Text, nullable=True),  # encrypted
    sa.Column("access_expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("cluster_url", sa.String(300), nullable=True),
    sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

oauth_states = sa.Table(
    "oauth_states",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("nonce", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

bookings = sa.Table(
    "bookings",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("collection_id", sa.String(64), nullable=False),
    sa.Column("payment_kind", sa.String(16), nullable=False),  # transaction|paylink
    sa.Column("twikey_id", sa.String(64), nullable=True),  # in that kind's numbering at Twikey
    sa.Column("twikey_transaction_id", sa.String(64), nullable=True),  # direct debits only
    # What Twinfield knows the payment by (domain/identity.py): "TX<id>"/"PL<id>", the bare id for
    # bookings made before kinds existed, else the collection id. Never rewritten.
    sa.Column("reference", sa.String(100), nullable=False),
    sa.Column("invoice_id", sa.String(64), nullable=True),
    sa.Column("invoice_number", sa.String(200), nullable=False),
    sa.Column("customer_number", sa.String(64), nullable=False),
    sa.Column("customer_email", sa.String(320), nullable=True),
    sa.Column("customer_name", sa.String(200), nullable=True),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("paid_on", sa.Date, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("paused_from", sa.String(16), nullable=True),  # the status to resume with
    sa.Column("office", sa.String(64), nullable=True),
    sa.Column("customer_code", sa.String(64), nullable=True),  # Twinfield dim2
    sa.Column("memo_number", sa.String(32), nullable=True),
    sa.Column("memo_line", sa.Integer, nullable=True),
    sa.Column("sales_daybook", sa.String(16), nullable=True),
    sa.Column("sales_number", sa.String(32), nullable=True),
    sa.Column("sales_line", sa.Integer, nullable=True),
    sa.Column("reverse_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reversal_memo_number", sa.String(32), nullable=True),
    sa.Column("reversal_posting", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reversed_on", sa.Date, nullable=True),
    sa.Column("error_code", sa.String(32), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("hint", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("transient_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("correlation_id", sa.String(200), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("booked_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("matched_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("tenant_id", "collection_id", name="uq_bookings_tenant_collection"),
    sa.Index(
        "uq_bookings_tenant_payment",
        "tenant_id",
        "payment_kind",
        "twikey_id",
        unique=True,
        postgresql_where=sa.text("twikey_id IS NOT NULL"),
    ),
    sa.Index("ix_bookings_due", "status", "next_attempt_at"),
    sa.Index("ix_bookings_tenant_status", "tenant_id", "status", "created_at"),
    sa.Index(
        "ix_bookings_tenant_booked_at", "tenant_id", "booked_at", postgresql_where=sa.text("booked_at IS NOT NULL")
    ),
)

booking_conflicts = sa.Table(
    "booking_conflicts",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("booking_id", sa.Uuid, sa.ForeignKey("bookings.id"), nullable=False),  # the existing one
    sa.Column("code", sa.String(32), nullable=False),  # payment_conflict
    sa.Column("differences", JSONB, nullable=False),  # ["payment", "amount", "invoice"]
    sa.Column("fingerprint", sa.String(64), nullable=False),  # the same conflict announced again is one row
    sa.Column("collection_id", sa.String(64), nullable=False),
    sa.Column("payment_kind", sa.String(16), nullable=False),
    sa.Column("twikey_id", sa.String(64), nullable=True),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("invoice_number", sa.String(200), nullable=False),
    sa.Column("incoming", JSONB, nullable=False),  # the collection as announced the second time
    sa.Column("status", sa.String(16), nullable=False),  # open|dismissed|booked
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("resolved_booking_id", sa.Uuid, nullable=True),  # the booking made of the incoming one
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("correlation_id", sa.String(200), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("tenant_id", "fingerprint", name="uq_booking_conflicts_fingerprint"),
    sa.Index("ix_booking_conflicts_tenant_status", "tenant_id", "status", "created_at"),
)

customer_updates = sa.Table(
    "customer_updates",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("mandate_id", sa.String(64), nullable=False),
    sa.Column("mandate_version", sa.Integer, nullable=False),
    sa.Column("customer_code", sa.String(64), nullable=False),
    sa.Column("iban", sa.String(34), nullable=False),
    sa.Column("bic", sa.String(11), nullable=True),
    sa.Column("ascription", sa.String(200), nullable=True),
    sa.Column("mandate_number", sa.String(64), nullable=True),
    sa.Column("signature_date", sa.Date, nullable=True),
    sa.Column("scheme", sa.String(8), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # open|done|error
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("hint", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("tenant_id", "mandate_id", "mandate_version", name="uq_customer_updates_mandate_version"),
    sa.Index("ix_customer_updates_due", "status", "next_attempt_at"),
)

credit_buckets = sa.Table(
    "twinfield_credit_buckets",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("capacity", sa.Float, nullable=False),
    sa.Column("per_second", sa.Float, nullable=False),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Reconciliation: one row per run (requested by an operator or the nightly job, carried out by a
# worker), and the differences each run found. A nightly run is unique per tenant and night.
reconcile_runs = sa.Table(
    "reconcile_runs",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),  # manual|nightly
    sa.Column("night", sa.Date, nullable=True),  # the night of a nightly run
    sa.Column("status", sa.String(16), nullable=False),  # requested|running|done|failed
    sa.Column("since", sa.Date, nullable=False),
    sa.Column("until", sa.Date, nullable=False),
    sa.Column("progress", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("differences", sa.Integer, nullable=False, server_default="0"),
    sa.Column("open_differences", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_reconcile_runs_tenant", "tenant_id", "requested_at"),
    sa.Index("ix_reconcile_runs_status", "status", "requested_at"),
    sa.Index(
        "uq_reconcile_runs_night",
        "tenant_id",
        "night",
        unique=True,
        postgresql_where=sa.text("night IS NOT NULL"),
    ),
)

reconcile_differences = sa.Table(
    "reconcile_differences",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("run_id", sa.Uuid, sa.ForeignKey("reconcile_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),  # the same difference has the same key in every run
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("payment_kind", sa.String(16), nullable=True),
    sa.Column("twikey_id", sa.String(64), nullable=True),
    sa.Column("booking_id", sa.Uuid, nullable=True),
    sa.Column("amount_cents", sa.BigInteger, nullable=True),
    sa.Column("twikey", JSONB, nullable=True),
    sa.Column("koppel", JSONB, nullable=True),
    sa.Column("twinfield", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("fix", sa.String(16), nullable=False),  # book|error: what the one-click fix does
    sa.Column("status", sa.String(16), nullable=False),  # open|fixed|ignored
    sa.Column("resolution", sa.String(16), nullable=True),  # book|error|ignore: what was done
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("run_id", "kind", "key", name="uq_reconcile_differences_run_key"),
    sa.Index("ix_reconcile_differences_tenant_key", "tenant_id", "kind", "key"),
)

# Mandate numbers Koppel's mandate-svc published, with the latest status (highest version wins).
koppel_mandates = sa.Table(
    "koppel_mandates",
    metadata,
    sa.Column("tenant_id", sa.Uuid, primary_key=True),
    sa.Column("mandate_number", sa.String(64), primary_key=True),
    sa.Column("mandate_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

TARGET_METADATA = (metadata, messaging_metadata)
