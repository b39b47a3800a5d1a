"""collection-svc's tables (its own database; no other service reads them).

- ``collection_policies``: one row per tenant (absent = the defaults);
- ``mandates``: the projection of each customer's mandates, from mandate.* events (and pay links
  through which a mandate was signed);
- ``subscriptions``; ``invoices`` (what the ERP posted; a number is unique among the tenant's
  invoices that are not withdrawn);
- ``collections``: one row per invoice and attempt; its id is what sync-svc derives Twikey's
  Idempotency-Key from, so an attempt can never be collected twice. A partial unique index keeps
  at most one live direct debit (scheduled, submitted or paid) per invoice;
- ``pay_links``: at most one per invoice.
"""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry

from koppel_shared.messaging.tables import metadata as messaging_metadata

metadata = sa.MetaData()

TZ = sa.DateTime(timezone=True)

collection_policies = sa.Table(
    "collection_policies",
    metadata,
    sa.Column("tenant_id", sa.Uuid, primary_key=True),
    sa.Column("auto_collect", sa.Boolean, nullable=False),
    sa.Column("lead_days", sa.Integer, nullable=False),
    sa.Column("max_amount_cents", sa.BigInteger, nullable=True),
    sa.Column("notify_debtor", sa.Boolean, nullable=False),
    sa.Column("paylink_when_no_mandate", sa.Boolean, nullable=False),
    sa.Column("retry_r_codes", JSONB, nullable=False),
    sa.Column("retry_after_days", sa.Integer, nullable=False),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("transliterate_text", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)

mandates = sa.Table(
    "mandates",
    metadata,
    sa.Column("tenant_id", sa.Uuid, primary_key=True),
    # mandate-svc's mandate id; "paylink:<mandate number>" for one known only from a pay link
    sa.Column("mandate_key", sa.String(100), primary_key=True),
    sa.Column("customer_number", sa.String(100), nullable=False),
    sa.Column("mandate_number", sa.String(100), nullable=True),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("max_amount_cents", sa.BigInteger, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    sa.Index("ix_mandates_customer", "tenant_id", "customer_number"),
)

subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("reference", sa.String(100), nullable=False),
    sa.Column("customer_number", sa.String(100), nullable=False),
    sa.Column("description", sa.String(200), nullable=True),
    sa.Column("collect_automatically", sa.Boolean, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    sa.UniqueConstraint("tenant_id", "reference", name="uq_subscriptions_reference"),
)

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    # insertion order: what lists and their cursors follow
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("invoice_number", sa.String(100), nullable=False),
    sa.Column("customer_number", sa.String(100), nullable=False),
    sa.Column("customer_name", sa.String(200), nullable=True),
    sa.Column("customer_email", sa.String(320), nullable=True),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("invoice_date", sa.Date, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("description", sa.String(140), nullable=True),
    sa.Column("subscription_reference", sa.String(100), nullable=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("withdrawn_at", TZ, nullable=True),
    sa.Column("created_at", TZ, nullable=False),
    sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_invoices_idempotency_key"),
    # a number is taken by one live invoice; a withdrawn one frees it for the corrected invoice
    sa.Index(
        "uq_invoices_number_live",
        "tenant_id",
        "invoice_number",
        unique=True,
        postgresql_where=sa.text("withdrawn_at IS NULL"),
    ),
    sa.Index("ix_invoices_number", "tenant_id", "invoice_number"),
    sa.Index("ix_invoices_customer", "tenant_id", "customer_number"),
    sa.Index("ix_invoices_list", "tenant_id", "seq"),
)

collections = sa.Table(
    "collections",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("invoice_id", sa.Uuid, sa.ForeignKey("invoices.id"), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("method", sa.String(20), nullable=False),  # direct_debit|paylink
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reason_code", sa.String(50), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("mandate_number", sa.String(100), nullable=True),
    sa.Column("collect_on", sa.Date, nullable=True),
    sa.Column("requested_date", sa.Date, nullable=True),
    sa.Column("twikey_transaction_id", sa.String(100), nullable=True),
    sa.Column("r_code", sa.String(10), nullable=True),
    sa.Column("last_feed_seq", sa.BigInteger, nullable=True),
    sa.Column("submitted_at", TZ, nullable=True),
    sa.Column("paid_at", TZ, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    sa.UniqueConstraint("invoice_id", "attempt", name="uq_collections_invoice_attempt"),
    sa.Index("ix_collections_due", "collect_on", postgresql_where=sa.text("status = 'scheduled'")),
    sa.Index("ix_collections_tenant_invoice", "tenant_id", "invoice_id"),
    sa.Index("ix_collections_tx", "tenant_id", "twikey_transaction_id"),
    sa.Index(
        "ix_collections_submitted", "tenant_id", "submitted_at", postgresql_where=sa.text("submitted_at IS NOT NULL")
    ),
    sa.Index("ix_collections_paid", "tenant_id", "paid_at", postgresql_where=sa.text("paid_at IS NOT NULL")),
    sa.Index("ix_collections_status", "tenant_id", "status", "invoice_id"),
    sa.Index(
        "uq_collections_one_live_debit",
        "invoice_id",
        unique=True,
        postgresql_where=sa.text("method = 'direct_debit' AND status IN ('scheduled', 'submitted', 'paid')"),
    ),
)

pay_links = sa.Table(
    "pay_links",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),  # also the reference sent to Twikey
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("invoice_id", sa.Uuid, sa.ForeignKey("invoices.id"), nullable=False, unique=True),
    sa.Column("state", sa.String(20), nullable=False),  # requested|created|started|pending|paid|declined|expired
    sa.Column("paylink_id", sa.String(100), nullable=True),
    sa.Column("url", sa.Text, nullable=True),
    sa.Column("mandate_number", sa.String(100), nullable=True),
    sa.Column("last_feed_seq", sa.BigInteger, nullable=True),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
)

# Twikey transaction messages received (inbox-recorded) and not yet applied. The consumer only
# stages them; the applier loop applies them in bulk, in arrival order, locking the collections
# they touch: a feed of 100,000 entries is a few hundred transactions instead of 100,000.
twikey_updates = sa.Table(
    "twikey_updates",
    metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("tenant_id", sa.Uuid, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("correlation_id", sa.String(200), nullable=True),
    sa.Column("data", JSONB, nullable=False),
    sa.Column("received_at", TZ, nullable=False, server_default=sa.func.now()),
    # set when applying it failed on its own: parked for an operator, no longer blocking the rest
    sa.Column("failed_at", TZ, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)


class TwikeyUpdate:
    """A staged Twikey transaction message, mapped for the ORM so that a consumer batch's rows are
    added without a round trip each and written by the commit's flush as one multi-row INSERT."""

    def __init__(
        self, tenant_id: uuid.UUID, event_id: uuid.UUID, event_type: str, correlation_id: str | None, data: Any
    ) -> None:
        self.tenant_id = tenant_id
        self.event_id = event_id
        self.event_type = event_type
        self.correlation_id = correlation_id
        self.data = data


registry().map_imperatively(TwikeyUpdate, twikey_updates)

TARGET_METADATA = (metadata, messaging_metadata)
