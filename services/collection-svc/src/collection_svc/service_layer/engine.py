"""The collection engine: applying the policy to invoices, submitting due collections to sync-svc
in bulk, re-evaluating a customer's invoices when the mandate changes, and requesting pay links.

Every function here runs inside one unit of work; events and commands go to the outbox in the
same transaction as the state change.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from collection_svc.adapters.orm import collections, invoices, pay_links, subscriptions
from collection_svc.domain.policy import (
    CollectionPolicy,
    Decision,
    InvoiceFacts,
    MandateView,
    Scheduled,
    Skipped,
    SubscriptionView,
    decide,
)
from collection_svc.domain.preview import decide_open, is_pinned
from collection_svc.domain.states import OPEN, Status
from collection_svc.service_layer.records import (
    SELECT_RECORD,
    CollectionRecord,
    customer_mandate,
    insert_record,
    load_policy,
    load_records,
    new_record,
    open_paylink_invoices,
    save_record,
    to_record,
)
from koppel_shared.db import UnitOfWork
from koppel_shared.debtor import Debtor
from koppel_shared.events import Envelope, new_event
from koppel_shared.events.commands import CollectItem, CollectRequested, PaylinkRequested
from koppel_shared.logging import get_logger

log = get_logger(__name__)

TWIKEY_BULK_MAX = 5000  # POST /transaction/bulk takes at most 5000 items
DIRECT_DEBIT = "direct_debit"
PAYLINK = "paylink"
HANDED_OFF = "sent to Twikey through sync-svc; awaiting its transaction id"


async def subscription_view(
    session: AsyncSession, tenant_id: uuid.UUID, reference: str | None
) -> SubscriptionView | None:
    if not reference:
        return None
    row = (
        await session.execute(
            sa.select(subscriptions).where(
                subscriptions.c.tenant_id == tenant_id, subscriptions.c.reference == reference
            )
        )
    ).first()
    if row is None:
        return None
    return SubscriptionView(row.reference, row.collect_automatically, row.active)


def apply_decision(rec: CollectionRecord, decision: Decision) -> None:
    """Write a policy decision onto an open collection (status, date, mandate and the reason)."""
    if isinstance(decision, Scheduled):
        rec.status = Status.SCHEDULED
        rec.collect_on = decision.collect_on
        rec.requested_date = decision.requested_date
        rec.mandate_number = decision.mandate_number
        rec.reason = decision.reason
        rec.reason_code = decision.kind
    else:
        rec.status = Status.SKIPPED
        rec.reason_code = str(decision.code)
        rec.reason = decision.reason
        rec.collect_on = None
        rec.requested_date = None


async def evaluate_new_invoice(
    uow: UnitOfWork, invoice: Any, now: datetime, today: date, cause: Envelope | None = None, attempt: int = 1
) -> CollectionRecord:
    """First decision for a freshly posted invoice (attempt 1), or for a corrected one whose last
    attempt failed (the next attempt): scheduled or skipped (with a pay link requested when the
    customer has no usable mandate and the tenant wants one)."""
    session = uow.session
    policy, _ = await load_policy(session, invoice.tenant_id)
    mandate = await customer_mandate(session, invoice.tenant_id, invoice.customer_number)
    subscription = await subscription_view(session, invoice.tenant_id, invoice.subscription_reference)
    decision = decide(InvoiceFacts(invoice.amount_cents, invoice.due_date), policy, mandate, today, subscription)
    rec = new_record(invoice, attempt, DIRECT_DEBIT, Status.SKIPPED, now)
    apply_decision(rec, decision)
    await insert_record(uow, rec, cause)
    if isinstance(decision, Skipped) and decision.offer_paylink:
        await request_paylink(uow, rec, now, cause)
    return rec


async def request_paylink(uow: UnitOfWork, rec: CollectionRecord, now: datetime, cause: Envelope | None) -> None:
    """Ask sync-svc for a Twikey pay link for the invoice (once per invoice)."""
    link_id = uuid.uuid4()
    inserted = await uow.session.execute(
        sa.dialects.postgresql.insert(pay_links)
        .values(
            id=link_id,
            tenant_id=rec.tenant_id,
            invoice_id=rec.invoice_id,
            state="requested",
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["invoice_id"])
        .returning(pay_links.c.id)
    )
    if inserted.first() is None:
        return
    name = rec.customer_name or None
    command = PaylinkRequested(
        reference=str(link_id),
        amount_cents=rec.amount_cents,
        message=(rec.description or f"Invoice {rec.invoice_number}")[:140],
        customer=Debtor(name=name, email=rec.customer_email, customer_number=rec.customer_number),
    )
    await uow.emit(cause.caused(command) if cause else new_event(command, tenant_id=rec.tenant_id))


async def reevaluate_customer(
    uow: UnitOfWork, tenant_id: uuid.UUID, customer_number: str, now: datetime, today: date, cause: Envelope | None
) -> int:
    """The customer's mandate changed: decide again for every open (scheduled or skipped) direct
    debit of theirs. Scheduled ones the mandate no longer allows are stopped with the reason;
    skipped ones it now allows are scheduled. Invoices on a pay link stay on it. Returns how many
    changed."""
    session = uow.session
    recs = await load_records(
        session,
        collections.c.tenant_id == tenant_id,
        invoices.c.customer_number == customer_number,
        invoices.c.withdrawn_at.is_(None),
        collections.c.method == DIRECT_DEBIT,
        collections.c.status.in_([str(s) for s in OPEN]),
    )
    if not recs:
        return 0
    policy, _ = await load_policy(session, tenant_id)
    mandate = await customer_mandate(session, tenant_id, customer_number)
    on_link = await open_paylink_invoices(session, [r.invoice_id for r in recs])
    changed = 0
    for rec in recs:
        if rec.invoice_id in on_link:
            continue
        if await redecide(uow, rec, policy, mandate, now, today, cause):
            changed += 1
    return changed


async def redecide(
    uow: UnitOfWork,
    rec: CollectionRecord,
    policy: CollectionPolicy,
    mandate: MandateView | None,
    now: datetime,
    today: date,
    cause: Envelope | None,
    invoice_changed: bool = False,
) -> bool:
    """Decide an open collection again; saved (with its event) when the decision changed it, or
    when the invoice itself was corrected (the event carries the new amount and text)."""
    subscription = await subscription_view(uow.session, rec.tenant_id, rec.subscription_reference)
    # The same rule a policy preview applies (domain/preview.py): a date fixed by hand or by a
    # retry is kept; only the mandate is checked again.
    pinned = is_pinned(rec.status, rec.reason_code)
    facts = InvoiceFacts(rec.amount_cents, rec.due_date)
    decision = decide_open(rec.status, rec.reason_code, facts, policy, mandate, today, subscription)
    before = (rec.status, rec.reason_code, rec.reason, rec.collect_on, rec.requested_date, rec.mandate_number)
    if pinned and isinstance(decision, Scheduled):
        rec.mandate_number = decision.mandate_number
    else:
        apply_decision(rec, decision)
    after = (rec.status, rec.reason_code, rec.reason, rec.collect_on, rec.requested_date, rec.mandate_number)
    if before == after and not invoice_changed:
        return False
    await save_record(uow, rec, now, cause)
    if isinstance(decision, Skipped) and decision.offer_paylink:
        await request_paylink(uow, rec, now, cause)
    return True


# --------------------------------------------------------------------------- the scheduler
_CLAIM = (
    SELECT_RECORD.where(
        collections.c.status == Status.SCHEDULED,
        collections.c.collect_on <= sa.bindparam("today"),
    )
    .order_by(collections.c.collect_on, collections.c.id)
    .limit(sa.bindparam("limit"))
    .with_for_update(of=collections, skip_locked=True)
)


async def submit_due(
    session_factory: async_sessionmaker[AsyncSession], now: datetime, limit: int = TWIKEY_BULK_MAX
) -> int:
    """Claim up to ``limit`` due collections (``FOR UPDATE SKIP LOCKED``: replicas claim disjoint
    rows), mark them submitted and write one ``sync.collect_requested`` per tenant (≤ 5000 items,
    one Twikey bulk call), in one transaction. Returns how many were submitted.

    The hand-off bumps the version but publishes nothing: ``collection.submitted`` follows when
    Twikey has the transaction (``twikey.transaction.created``, with its id). That keeps the
    commands from queueing in the outbox behind one announcement per collection."""
    today = now.date()
    async with UnitOfWork(session_factory) as uow:
        rows = (await uow.session.execute(_CLAIM, {"today": today, "limit": limit})).all()
        if not rows:
            return 0
        recs = [to_record(r) for r in rows]
        by_tenant: dict[uuid.UUID, list[CollectionRecord]] = defaultdict(list)
        for rec in recs:
            rec.status = Status.SUBMITTED
            rec.submitted_at = now
            rec.reason = HANDED_OFF
            rec.version += 1
            rec.updated_at = now
            rec.requested_date = max(rec.requested_date or today, today)
            by_tenant[rec.tenant_id].append(rec)
        await uow.session.execute(
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
        events: list[Envelope] = []
        for tenant_id, items in by_tenant.items():
            for start in range(0, len(items), TWIKEY_BULK_MAX):
                chunk = items[start : start + TWIKEY_BULK_MAX]
                command = CollectRequested.model_construct(items=[_collect_item(r) for r in chunk])
                events.append(new_event(command, tenant_id=tenant_id))
        await uow.emit(*events)
        await uow.commit()
    log.info("scheduler.submitted", count=len(recs), tenants=len(by_tenant))
    return len(recs)


def _collect_item(rec: CollectionRecord) -> CollectItem:
    assert rec.mandate_number is not None
    return CollectItem.model_construct(
        collection_id=str(rec.id),
        mandate_number=rec.mandate_number,
        amount_cents=rec.amount_cents,
        message=(rec.description or f"Invoice {rec.invoice_number}")[:140],
        reference=str(rec.id),
        requested_date=rec.requested_date,
    )
