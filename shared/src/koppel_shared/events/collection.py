"""collection-svc's public events. Each carries the whole current collection (``Collection``)
with a growing ``version``; bookkeeping-svc books from ``collection.paid`` and reverses on
``collection.reversed``. ``collection.paylink_created`` carries the URL of a pay link made for an
invoice that cannot be collected by direct debit, for the ERP to send to its customer."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from koppel_shared.events.registry import EventData, event_type

# What a paid item is at Twikey. Twikey numbers transactions and pay links in separate sequences,
# so an id alone is ambiguous: a payment is identified by (tenant, kind, Twikey id).
PaymentKind = Literal["transaction", "paylink"]


class Collection(EventData):
    collection_id: str
    invoice_id: str
    invoice_number: str
    customer_number: str
    customer_email: str | None = None
    customer_name: str | None = None
    description: str | None = None
    amount_cents: int
    currency: str = "EUR"
    status: str  # scheduled|submitted|paid|failed|reversed|skipped|withdrawn
    method: str  # direct_debit|paylink
    # why, as a stable code (due, no_mandate, above_tenant_limit, bank_error, err_… from Twikey;
    # the list is in collection-svc's README) and in words
    reason_code: str | None = None
    reason: str | None = None
    mandate_number: str | None = None
    # The payment's identity at Twikey: kind ``transaction`` (direct debit) or ``paylink``, and the
    # id Twikey gave it in that kind's numbering. Consumers key on both. Events published before
    # these fields existed lack them: read the kind from ``method`` and the id from
    # ``twikey_transaction_id``.
    payment_kind: PaymentKind | None = None
    twikey_id: str | None = None
    twikey_transaction_id: str | None = None  # the Twikey transaction of a direct debit only
    r_code: str | None = None
    due_date: date | None = None
    collect_on: date | None = None
    paid_at: datetime | None = None
    version: int
    updated_at: datetime


@event_type("collection.scheduled", version=1)
class CollectionScheduled(Collection):
    pass


@event_type("collection.skipped", version=1)
class CollectionSkipped(Collection):
    pass


@event_type("collection.submitted", version=1)
class CollectionSubmitted(Collection):
    pass


@event_type("collection.paid", version=1)
class CollectionPaid(Collection):
    pass


@event_type("collection.failed", version=1)
class CollectionFailed(Collection):
    pass


@event_type("collection.reversed", version=1)
class CollectionReversed(Collection):
    pass


@event_type("collection.paylink_created", version=1)
class CollectionPaylinkCreated(EventData):
    """Twikey made the pay link of an invoice: ``url`` is the page where the debtor pays."""

    invoice_id: str
    invoice_number: str
    customer_number: str
    customer_email: str | None = None
    customer_name: str | None = None
    amount_cents: int
    currency: str = "EUR"
    collection_id: str | None = None  # the direct debit that could not be made
    reason_code: str | None = None  # why not (no_mandate, mandate_cancelled, …)
    paylink_id: str
    url: str
    created_at: datetime
