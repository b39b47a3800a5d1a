"""Loading and saving collections (with the invoice facts every event carries), and publishing
each change as a ``collection.*`` event through the outbox with a growing version."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from collection_svc.adapters.orm import (
    collection_policies,
    collections,
    invoices,
    mandates,
    pay_links,
    subscriptions,
)
from collection_svc.domain.policy import CollectionPolicy, MandateView, best_mandate
from collection_svc.domain.states import Status
from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope, new_event
from koppel_shared.events.collection import (
    Collection,
    CollectionFailed,
    CollectionPaid,
    CollectionReversed,
    CollectionScheduled,
    CollectionSkipped,
    CollectionSubmitted,
)

Clock = Callable[[], datetime]

HANDED_OFF = "sent to Twikey through sync-svc; awaiting its transaction id"

COLLECTION_EVENTS_NS = uuid.UUID("a4f0c0de-5b1e-4c1b-9e8e-6c0113c7e0a1")

# withdrawn has no event type of its own in the contract: it travels as collection.skipped with
# status "withdrawn" (consumers read ``status``).
EVENT_MODEL: dict[str, type[Collection]] = {
    Status.SCHEDULED: CollectionScheduled,
    Status.SKIPPED: CollectionSkipped,
    Status.WITHDRAWN: CollectionSkipped,
    Status.SUBMITTED: CollectionSubmitted,
    Status.PAID: CollectionPaid,
    Status.FAILED: CollectionFailed,
    Status.REVERSED: CollectionReversed,
}


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class CollectionRecord:
    # the collection
    id: uuid.UUID
    tenant_id: uuid.UUID
    invoice_id: uuid.UUID
    attempt: int
    method: str
    status: str
    reason_code: str | None
    reason: str | None
    mandate_number: str | None
    collect_on: date | None
    requested_date: date | None
    twikey_transaction_id: str | None
    r_code: str | None
    last_feed_seq: int | None
    submitted_at: datetime | None
    paid_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    # the invoice
    invoice_number: str
    customer_number: str
    customer_name: str | None
    customer_email: str | None
    description: str | None
    amount_cents: int
    currency: str
    due_date: date
    subscription_reference: str | None
    withdrawn_at: datetime | None


COLLECTION_FIELDS = [c.name for c in collections.columns]
INVOICE_FIELDS = [
    "invoice_number",
    "customer_number",
    "customer_name",
    "customer_email",
    "description",
    "amount_cents",
    "currency",
    "due_date",
    "subscription_reference",
    "withdrawn_at",
]
MUTABLE_FIELDS = [
    "status",
    "reason_code",
    "reason",
    "mandate_number",
    "collect_on",
    "requested_date",
    "twikey_transaction_id",
    "r_code",
    "last_feed_seq",
    "submitted_at",
    "paid_at",
    "version",
    "updated_at",
]
assert {f.name for f in fields(CollectionRecord)} == set(COLLECTION_FIELDS) | set(INVOICE_FIELDS)

SELECT_RECORD = sa.select(
    *[collections.c[n] for n in COLLECTION_FIELDS], *[invoices.c[n] for n in INVOICE_FIELDS]
).select_from(collections.join(invoices, invoices.c.id == collections.c.invoice_id))


def to_record(row: Any) -> CollectionRecord:
    return CollectionRecord(**row._mapping)


async def load_records(session: AsyncSession, *where: Any, lock: bool = True) -> list[CollectionRecord]:
    stmt = SELECT_RECORD.where(*where).order_by(collections.c.created_at, collections.c.attempt)
    if lock:
        stmt = stmt.with_for_update(of=collections)
    return [to_record(r) for r in (await session.execute(stmt)).all()]


async def load_record(session: AsyncSession, tenant_id: uuid.UUID, collection_id: uuid.UUID) -> CollectionRecord | None:
    found = await load_records(session, collections.c.tenant_id == tenant_id, collections.c.id == collection_id)
    return found[0] if found else None


def collection_data(rec: CollectionRecord) -> dict[str, Any]:
    return {
        "collection_id": str(rec.id),
        "invoice_id": str(rec.invoice_id),
        "invoice_number": rec.invoice_number,
        "customer_number": rec.customer_number,
        "customer_email": rec.customer_email,
        "customer_name": rec.customer_name,
        "description": rec.description,
        "amount_cents": rec.amount_cents,
        "currency": rec.currency,
        "status": rec.status,
        "method": rec.method,
        "reason_code": rec.reason_code,
        "reason": rec.reason,
        "mandate_number": rec.mandate_number,
        **payment_identity(rec),
        "r_code": rec.r_code,
        "due_date": rec.due_date,
        "collect_on": rec.collect_on,
        "paid_at": rec.paid_at,
        "version": rec.version,
        "updated_at": rec.updated_at,
    }


def payment_identity(rec: CollectionRecord) -> dict[str, Any]:
    """What the collection's payment is at Twikey: (kind, Twikey id). Twikey numbers pay links and
    transactions separately, so consumers key on both. A pay-link collection keeps the pay link's
    id in ``twikey_transaction_id`` here; in events that field names transactions only."""
    kind = "paylink" if rec.method == "paylink" else "transaction"
    return {
        "payment_kind": kind,
        "twikey_id": rec.twikey_transaction_id,
        "twikey_transaction_id": rec.twikey_transaction_id if kind == "transaction" else None,
    }


def collection_event(rec: CollectionRecord, cause: Envelope | None = None) -> Envelope:
    """The event for the record's current version; its id is derived from (collection, version),
    so emitting one version twice is a no-op in the outbox."""
    model = EVENT_MODEL[rec.status]
    data = model.model_construct(**collection_data(rec))
    event_id = uuid.uuid5(COLLECTION_EVENTS_NS, f"{rec.id}/{rec.version}")
    if cause is not None:
        return cause.caused(data, id=event_id)
    return new_event(data, tenant_id=rec.tenant_id, id=event_id)


async def insert_record(uow: UnitOfWork, rec: CollectionRecord, cause: Envelope | None = None) -> None:
    await of(uow).add_collections([rec])
    await uow.emit(collection_event(rec, cause))


async def save_record(uow: UnitOfWork, rec: CollectionRecord, now: datetime, cause: Envelope | None = None) -> None:
    """Persist a change: bump the version, stamp the time, emit the event."""
    rec.version += 1
    rec.updated_at = now
    await of(uow).save_collections([rec])
    await uow.emit(collection_event(rec, cause))


def new_record(
    invoice: Any,
    attempt: int,
    method: str,
    status: Status,
    now: datetime,
    **values: Any,
) -> CollectionRecord:
    base: dict[str, Any] = {
        "id": uuid.uuid4(),
        "tenant_id": invoice.tenant_id,
        "invoice_id": invoice.id,
        "attempt": attempt,
        "method": method,
        "status": str(status),
        "reason_code": None,
        "reason": None,
        "mandate_number": None,
        "collect_on": None,
        "requested_date": None,
        "twikey_transaction_id": None,
        "r_code": None,
        "last_feed_seq": None,
        "submitted_at": None,
        "paid_at": None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    base.update(values)
    base.update({n: getattr(invoice, n) for n in INVOICE_FIELDS})
    return CollectionRecord(**base)


# --------------------------------------------------------------------------- policy, mandates
async def load_policy(session: AsyncSession, tenant_id: uuid.UUID) -> tuple[CollectionPolicy, int]:
    row = (
        await session.execute(sa.select(collection_policies).where(collection_policies.c.tenant_id == tenant_id))
    ).first()
    if row is None:
        return CollectionPolicy(), 0
    return (
        CollectionPolicy(
            auto_collect=row.auto_collect,
            lead_days=row.lead_days,
            max_amount_cents=row.max_amount_cents,
            notify_debtor=row.notify_debtor,
            paylink_when_no_mandate=row.paylink_when_no_mandate,
            retry_r_codes=tuple(row.retry_r_codes),
            retry_after_days=row.retry_after_days,
            max_attempts=row.max_attempts,
            transliterate_text=row.transliterate_text,
        ),
        row.version,
    )


async def customer_mandate(session: AsyncSession, tenant_id: uuid.UUID, customer_number: str) -> MandateView | None:
    rows = (
        await session.execute(
            sa.select(mandates).where(mandates.c.tenant_id == tenant_id, mandates.c.customer_number == customer_number)
        )
    ).all()
    views = [
        MandateView(r.mandate_number, r.status, r.max_amount_cents, int(r.updated_at.timestamp() * 1000)) for r in rows
    ]
    return best_mandate(views)


OPEN_PAYLINK_STATES = ("requested", "created", "started", "pending", "paid")


async def open_paylink_invoices(session: AsyncSession, invoice_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Invoices among these whose pay link is still in play (or paid): they stay on the link."""
    if not invoice_ids:
        return set()
    rows = await session.execute(
        sa.select(pay_links.c.invoice_id).where(
            pay_links.c.invoice_id.in_(invoice_ids), pay_links.c.state.in_(OPEN_PAYLINK_STATES)
        )
    )
    return {r[0] for r in rows}


# --------------------------------------------------------------------------- the repository
# The scheduler listens on this channel (entrypoints/scheduler.py).
DUE_CHANNEL = "koppel_collection_due"
_WAKE_SCHEDULER = sa.text(f"SELECT pg_notify('{DUE_CHANNEL}', '')")

_CLAIM_DUE = (
    SELECT_RECORD.where(
        collections.c.status == Status.SCHEDULED,
        collections.c.collect_on <= sa.bindparam("today"),
    )
    .order_by(collections.c.collect_on, collections.c.id)
    .limit(sa.bindparam("limit"))
    .with_for_update(of=collections, skip_locked=True)
)


class CollectionRepository(Protocol):
    """Invoices, their collections and what deciding them reads, as the use cases use them (SQL
    below, dicts in the unit tests' fakes). Rows are objects with the table's columns as
    attributes; ``lock_*`` lock what they return until the transaction ends."""

    async def policy(self, tenant_id: uuid.UUID) -> tuple[CollectionPolicy, int]: ...
    async def customer_mandate(self, tenant_id: uuid.UUID, customer_number: str) -> MandateView | None: ...
    async def subscription(self, tenant_id: uuid.UUID, reference: str) -> Any: ...
    async def invoice(self, invoice_id: uuid.UUID) -> Any: ...
    async def invoice_with_key(self, tenant_id: uuid.UUID, key: str) -> Any: ...
    async def open_invoice_numbered(self, tenant_id: uuid.UUID, number: str) -> Any: ...
    async def add_invoice(self, values: dict[str, Any]) -> bool: ...
    async def add_pay_link(
        self, link_id: uuid.UUID, tenant_id: uuid.UUID, invoice_id: uuid.UUID, now: datetime
    ) -> bool: ...
    async def add_collections(self, recs: Sequence[CollectionRecord]) -> None: ...
    async def save_collections(self, recs: Sequence[CollectionRecord]) -> None: ...
    async def claim_due(self, today: date, limit: int) -> list[CollectionRecord]: ...
    async def mark_submitted(self, recs: Sequence[CollectionRecord], now: datetime, today: date) -> None: ...
    async def lock_by_ids(self, ids: Sequence[uuid.UUID]) -> list[CollectionRecord]: ...
    async def lock_direct_debits(self, transactions: Sequence[tuple[uuid.UUID, str]]) -> list[CollectionRecord]: ...
    async def lock_open_siblings(self, rec: CollectionRecord) -> list[CollectionRecord]: ...


def of(uow: UnitOfWork) -> CollectionRepository:
    """The unit of work's collection repository."""
    return uow.repository(SqlCollectionRepository)


class SqlCollectionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def policy(self, tenant_id: uuid.UUID) -> tuple[CollectionPolicy, int]:
        return await load_policy(self.session, tenant_id)

    async def customer_mandate(self, tenant_id: uuid.UUID, customer_number: str) -> MandateView | None:
        return await customer_mandate(self.session, tenant_id, customer_number)

    async def subscription(self, tenant_id: uuid.UUID, reference: str) -> Any:
        query = sa.select(subscriptions).where(
            subscriptions.c.tenant_id == tenant_id, subscriptions.c.reference == reference
        )
        return (await self.session.execute(query)).first()

    async def invoice(self, invoice_id: uuid.UUID) -> Any:
        return (await self.session.execute(sa.select(invoices).where(invoices.c.id == invoice_id))).one()

    async def invoice_with_key(self, tenant_id: uuid.UUID, key: str) -> Any:
        query = sa.select(invoices).where(invoices.c.tenant_id == tenant_id, invoices.c.idempotency_key == key)
        return (await self.session.execute(query)).first()

    async def open_invoice_numbered(self, tenant_id: uuid.UUID, number: str) -> Any:
        query = sa.select(invoices).where(
            invoices.c.tenant_id == tenant_id,
            invoices.c.invoice_number == number,
            invoices.c.withdrawn_at.is_(None),
        )
        return (await self.session.execute(query)).first()

    async def add_invoice(self, values: dict[str, Any]) -> bool:
        """False when the Idempotency-Key or the (open) invoice number is taken already."""
        stmt = insert(invoices).values(**values).on_conflict_do_nothing().returning(invoices.c.id)
        return (await self.session.execute(stmt)).first() is not None

    async def add_pay_link(
        self, link_id: uuid.UUID, tenant_id: uuid.UUID, invoice_id: uuid.UUID, now: datetime
    ) -> bool:
        """False when the invoice has its pay link already (one per invoice)."""
        stmt = (
            insert(pay_links)
            .values(
                id=link_id,
                tenant_id=tenant_id,
                invoice_id=invoice_id,
                state="requested",
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["invoice_id"])
            .returning(pay_links.c.id)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def add_collections(self, recs: Sequence[CollectionRecord]) -> None:
        if recs:
            await self.session.execute(
                sa.insert(collections), [{n: getattr(r, n) for n in COLLECTION_FIELDS} for r in recs]
            )
            await self._wake_scheduler_if_due(recs)

    async def _wake_scheduler_if_due(self, recs: Sequence[CollectionRecord]) -> None:
        # A collection due today goes to Twikey within seconds, not at the scheduler's next
        # round; the NOTIFY is delivered only if this transaction commits (a hint: the round
        # still reads what is due, and the interval still catches what a lost NOTIFY missed).
        today = datetime.now(UTC).date()
        if any(r.status == Status.SCHEDULED and r.collect_on is not None and r.collect_on <= today for r in recs):
            await self.session.execute(_WAKE_SCHEDULER)

    async def save_collections(self, recs: Sequence[CollectionRecord]) -> None:
        if len(recs) == 1:
            rec = recs[0]
            await self.session.execute(
                sa.update(collections)
                .where(collections.c.id == rec.id)
                .values({n: getattr(rec, n) for n in MUTABLE_FIELDS})
            )
        elif recs:
            await self.session.execute(
                sa.update(collections)
                .where(collections.c.id == sa.bindparam("b_id"))
                .values({n: sa.bindparam(f"b_{n}") for n in MUTABLE_FIELDS}),
                [{"b_id": r.id, **{f"b_{n}": getattr(r, n) for n in MUTABLE_FIELDS}} for r in recs],
            )
        await self._wake_scheduler_if_due(recs)

    async def claim_due(self, today: date, limit: int) -> list[CollectionRecord]:
        """Due scheduled collections, ``FOR UPDATE SKIP LOCKED``: replicas claim disjoint rows."""
        return [to_record(r) for r in (await self.session.execute(_CLAIM_DUE, {"today": today, "limit": limit})).all()]

    async def mark_submitted(self, recs: Sequence[CollectionRecord], now: datetime, today: date) -> None:
        await self.session.execute(
            sa.update(collections)
            .where(collections.c.id.in_([r.id for r in recs]))
            .values(
                status=Status.SUBMITTED,
                submitted_at=now,
                reason=HANDED_OFF,
                reason_code="sent",
                # a collection claimed late never asks the bank for a date in the past
                requested_date=sa.func.greatest(collections.c.requested_date, today),
                version=collections.c.version + 1,
                updated_at=now,
            )
        )

    async def _lock(self, *where: Any) -> list[CollectionRecord]:
        stmt = SELECT_RECORD.where(*where).order_by(collections.c.id).with_for_update(of=collections)
        return [to_record(r) for r in (await self.session.execute(stmt)).all()]

    async def lock_by_ids(self, ids: Sequence[uuid.UUID]) -> list[CollectionRecord]:
        return await self._lock(collections.c.id.in_(ids))

    async def lock_direct_debits(self, transactions: Sequence[tuple[uuid.UUID, str]]) -> list[CollectionRecord]:
        """Direct-debit collections by (tenant, Twikey transaction id)."""
        return await self._lock(
            sa.tuple_(collections.c.tenant_id, collections.c.twikey_transaction_id).in_(list(transactions)),
            collections.c.method == "direct_debit",
        )

    async def lock_open_siblings(self, rec: CollectionRecord) -> list[CollectionRecord]:
        """The invoice's other collections still open (scheduled or skipped)."""
        return await self._lock(
            collections.c.invoice_id == rec.invoice_id,
            collections.c.id != rec.id,
            collections.c.status.in_([Status.SCHEDULED, Status.SKIPPED]),
        )
