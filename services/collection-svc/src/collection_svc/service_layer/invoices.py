"""Invoice use cases: post (idempotent on the Idempotency-Key and on the invoice number), correct,
read, list, withdraw, collect now. Reads always filter by the caller's tenant.

An invoice Twikey refused (or one that is not collectable as posted) is repaired under its own
number: corrected in place while no collection of it is at Twikey or paid (the open collection is
decided again; after a failed attempt a new one is made), or withdrawn and posted again — a
withdrawn invoice frees its number."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from collection_svc.adapters.orm import collections, invoices, pay_links
from collection_svc.domain import invoices as rules
from collection_svc.domain import rcodes
from collection_svc.domain.policy import InvoiceFacts, Skipped, decide
from collection_svc.domain.states import OPEN, Status
from collection_svc.service_layer import records
from collection_svc.service_layer.engine import (
    DIRECT_DEBIT,
    apply_decision,
    evaluate_new_invoice,
    redecide,
    request_paylink,
    subscription_view,
)
from collection_svc.service_layer.records import (
    OPEN_PAYLINK_STATES,
    customer_mandate,
    insert_record,
    load_policy,
    load_records,
    new_record,
    save_record,
)
from koppel_shared.db import UnitOfWork
from koppel_shared.errors import Conflict, Invalid, NotFound


def _field_problem(errors: list[rules.FieldError]) -> Invalid:
    return Invalid.fields(e.as_dict() for e in errors)


def _as_input(row: Any) -> rules.InvoiceInput:
    return rules.InvoiceInput(
        invoice_number=row.invoice_number,
        customer_number=row.customer_number,
        customer_name=row.customer_name,
        customer_email=row.customer_email,
        amount_cents=row.amount_cents,
        currency=row.currency,
        invoice_date=row.invoice_date,
        due_date=row.due_date,
        description=row.description,
        subscription_reference=row.subscription_reference,
    )


@dataclass
class Posted:
    invoice_id: uuid.UUID
    created: bool


async def post_invoice(
    uow: UnitOfWork, tenant_id: uuid.UUID, data: rules.InvoiceInput, idempotency_key: str | None, now: datetime
) -> Posted:
    """Store a new invoice and decide its collection. Posting the same invoice again (same key or
    same number with the same data) answers with the stored one; different data → 409."""
    repo = records.of(uow)
    policy, _ = await repo.policy(tenant_id)
    data = rules.normalise(data, policy.transliterate_text)
    errors = rules.validate(data, now.date())
    if data.subscription_reference and not any(e.field == "subscription_reference" for e in errors):
        sub = await repo.subscription(tenant_id, data.subscription_reference)
        if sub is None:
            errors.append(rules.FieldError("subscription_reference", "exists", "no subscription with this reference"))
        elif sub.customer_number != data.customer_number:
            errors.append(
                rules.FieldError(
                    "subscription_reference", "same_customer", "the subscription belongs to another customer"
                )
            )
    if errors:
        raise _field_problem(errors)
    fp = rules.fingerprint(data)

    if idempotency_key:
        row = await repo.invoice_with_key(tenant_id, idempotency_key)
        if row is not None:
            if row.fingerprint != fp:
                raise Conflict(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a different invoice",
                    invoice_id=str(row.id),
                )
            return Posted(row.id, False)

    invoice_id = uuid.uuid4()
    inserted = await repo.add_invoice(
        {
            "id": invoice_id,
            "tenant_id": tenant_id,
            "fingerprint": fp,
            "idempotency_key": idempotency_key,
            "created_at": now,
            "invoice_number": data.invoice_number,
            "customer_number": data.customer_number,
            "customer_name": data.customer_name,
            "customer_email": data.customer_email,
            "amount_cents": data.amount_cents,
            "currency": data.currency,
            "invoice_date": data.invoice_date,
            "due_date": data.due_date,
            "description": data.description,
            "subscription_reference": data.subscription_reference,
        }
    )
    if not inserted:
        existing = await repo.open_invoice_numbered(tenant_id, data.invoice_number)
        if existing is None:  # lost a race on the Idempotency-Key: the other request wins
            raise Conflict("idempotency_key_in_use", "a request with this Idempotency-Key is in progress")
        if existing.fingerprint != fp:
            diff = rules.differences(_as_input(existing), data)
            raise Conflict(
                "invoice_number_conflict",
                f"invoice number {data.invoice_number} exists with different {', '.join(diff)}",
                invoice_id=str(existing.id),
                errors=[
                    {"field": f, "rule": "same_as_existing_invoice", "message": "differs from the stored invoice"}
                    for f in diff
                ],
            )
        return Posted(existing.id, False)

    row = await repo.invoice(invoice_id)
    await evaluate_new_invoice(uow, row, now, now.date())
    return Posted(invoice_id, True)


async def _invoice_row(session: AsyncSession, tenant_id: uuid.UUID, invoice_id: uuid.UUID, lock: bool = False) -> Any:
    stmt = sa.select(invoices).where(invoices.c.tenant_id == tenant_id, invoices.c.id == invoice_id)
    if lock:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).first()
    if row is None:
        raise NotFound("invoice_not_found", f"no invoice {invoice_id}")
    return row


NOT_NULL = ("amount_cents", "invoice_date", "due_date")
CORRECTABLE = (*NOT_NULL, "description", "customer_name", "customer_email")


async def correct_invoice(
    uow: UnitOfWork, tenant_id: uuid.UUID, invoice_id: uuid.UUID, changes: dict[str, Any], now: datetime
) -> None:
    """Correct an invoice under its own number (amount, dates, texts) while none of its
    collections is at Twikey or paid and no pay link is in play. The same rules as posting apply.
    The open collection is decided again with the new facts; when the last attempt failed (Twikey
    refused it, or the bank), a new attempt is decided. A reversed one is collected again only by
    collect-now: its debtor asked the money back."""
    session = uow.session
    invoice = await _invoice_row(session, tenant_id, invoice_id, lock=True)
    if invoice.withdrawn_at is not None:
        raise Conflict("invoice_withdrawn", "the invoice was withdrawn; post it again under its number")
    nulls = [
        rules.FieldError(k, "not_null", f"{k} cannot be null") for k in NOT_NULL if k in changes and changes[k] is None
    ]
    if nulls:
        raise _field_problem(nulls)
    policy, _ = await load_policy(session, tenant_id)
    before = _as_input(invoice)
    data = rules.normalise(replace(before, **changes), policy.transliterate_text)
    errors = rules.validate(data, now.date())
    if errors:
        raise _field_problem(errors)
    recs = await load_records(session, collections.c.tenant_id == tenant_id, collections.c.invoice_id == invoice_id)
    _refuse_while_collecting(recs)
    link = (await session.execute(sa.select(pay_links.c.state).where(pay_links.c.invoice_id == invoice_id))).first()
    if link is not None and link.state in OPEN_PAYLINK_STATES:
        raise Conflict("pay_link_open", f"the invoice is offered by pay link ({link.state}); it cannot change")
    if data == before:
        return
    values = {k: getattr(data, k) for k in CORRECTABLE}
    await session.execute(
        sa.update(invoices).where(invoices.c.id == invoice_id).values(fingerprint=rules.fingerprint(data), **values)
    )
    await _rearm(uow, invoice_id, now)


def _too_late(rec: Any, code: str, change: str) -> Conflict:
    return Conflict(
        code,
        f"the invoice's collection is {rec.status}; it can no longer be {change}",
        collection_id=str(rec.id),
        collection_status=rec.status,
    )


def _refuse_while_collecting(recs: list[Any]) -> None:
    live = [r for r in recs if r.status in (Status.SUBMITTED, Status.PAID)]
    if live:
        code = "already_paid" if live[-1].status == Status.PAID else "collection_in_progress"
        raise _too_late(live[-1], code, "corrected")


async def _rearm(uow: UnitOfWork, invoice_id: uuid.UUID, now: datetime) -> None:
    session = uow.session
    invoice = (await session.execute(sa.select(invoices).where(invoices.c.id == invoice_id))).one()
    recs = await load_records(session, collections.c.invoice_id == invoice_id)
    open_ = [r for r in recs if r.status in OPEN and r.method == DIRECT_DEBIT]
    if open_:
        rec = open_[-1]
        policy, _ = await load_policy(session, rec.tenant_id)
        mandate = await customer_mandate(session, rec.tenant_id, rec.customer_number)
        await redecide(uow, rec, policy, mandate, now, now.date(), None, invoice_changed=True)
    elif recs and recs[-1].status == Status.FAILED:
        await evaluate_new_invoice(uow, invoice, now, now.date(), attempt=max(r.attempt for r in recs) + 1)


async def withdraw_invoice(uow: UnitOfWork, tenant_id: uuid.UUID, invoice_id: uuid.UUID, now: datetime) -> None:
    """Withdraw an invoice whose collection has not been submitted; after that it is Twikey's."""
    invoice = await _invoice_row(uow.session, tenant_id, invoice_id, lock=True)
    if invoice.withdrawn_at is not None:
        return
    recs = await load_records(uow.session, collections.c.tenant_id == tenant_id, collections.c.invoice_id == invoice_id)
    busy = [r for r in recs if r.status not in (*OPEN, Status.WITHDRAWN, Status.FAILED, Status.REVERSED)]
    if busy:
        raise _too_late(busy[-1], "collection_in_progress", "withdrawn")
    await uow.session.execute(sa.update(invoices).where(invoices.c.id == invoice_id).values(withdrawn_at=now))
    for rec in recs:
        if rec.status in OPEN:
            rec.status = Status.WITHDRAWN
            rec.reason_code = "withdrawn"
            rec.reason = "withdrawn by the ERP"
            rec.withdrawn_at = now
            await save_record(uow, rec, now)


async def collect_now(uow: UnitOfWork, tenant_id: uuid.UUID, invoice_id: uuid.UUID, now: datetime) -> None:
    """Collect by hand, today: an open attempt is scheduled for today; after a failure or a
    reversal a new attempt is made. The mandate and both limits still apply."""
    session = uow.session
    invoice = await _invoice_row(session, tenant_id, invoice_id, lock=True)
    if invoice.withdrawn_at is not None:
        raise Conflict("invoice_withdrawn", "the invoice was withdrawn")
    recs = await load_records(session, collections.c.tenant_id == tenant_id, collections.c.invoice_id == invoice_id)
    live = [r for r in recs if r.status in (Status.SUBMITTED, Status.PAID)]
    if live:
        raise Conflict(
            "already_collected", f"the invoice is already {live[-1].status}", collection_status=live[-1].status
        )
    link = (await session.execute(sa.select(pay_links.c.state).where(pay_links.c.invoice_id == invoice_id))).first()
    if link is not None and link.state in ("requested", "created", "started", "pending"):
        raise Conflict("pay_link_open", "the invoice is offered by pay link; it is not also collected by debit")
    policy, _ = await load_policy(session, tenant_id)
    mandate = await customer_mandate(session, tenant_id, invoice.customer_number)
    sub = await subscription_view(session, tenant_id, invoice.subscription_reference)
    decision = decide(
        InvoiceFacts(invoice.amount_cents, invoice.due_date), policy, mandate, now.date(), sub, manual=True
    )
    if isinstance(decision, Skipped):
        raise Invalid(f"cannot_collect_{decision.code}", decision.reason, reason_code=str(decision.code))
    open_ = [r for r in recs if r.status in OPEN]
    if open_:
        rec = open_[-1]
        apply_decision(rec, decision)
        await save_record(uow, rec, now)
    else:
        attempt = max((r.attempt for r in recs), default=0) + 1
        rec = new_record(invoice, attempt, DIRECT_DEBIT, Status.SCHEDULED, now)
        apply_decision(rec, decision)
        await insert_record(uow, rec)


__all__ = ["Posted", "collect_now", "correct_invoice", "post_invoice", "request_paylink", "withdraw_invoice"]


# --------------------------------------------------------------------------- reading
def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"invoice:{seq}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        kind, _, seq = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind != "invoice":
            raise ValueError(kind)
        return int(seq)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(
            "validation_error",
            "cursor: not a cursor this API returned",
            errors=[{"field": "cursor", "rule": "valid_cursor", "message": "not a cursor this API returned"}],
        ) from exc


@dataclass
class InvoiceFilter:
    status: str | None = None
    customer_number: str | None = None
    invoice_number: str | None = None
    subscription_reference: str | None = None
    due_from: date | None = None
    due_to: date | None = None
    search: str | None = None


def _matches(tenant_id: uuid.UUID, search: str) -> sa.ColumnElement[bool]:
    """An invoice or customer number, part of the customer's name, the mandate number or Twikey
    transaction of any of its collections, or its pay link's id."""
    by_collection = sa.exists().where(
        collections.c.tenant_id == tenant_id,
        collections.c.invoice_id == invoices.c.id,
        sa.or_(collections.c.twikey_transaction_id == search, collections.c.mandate_number == search),
    )
    by_pay_link = sa.exists().where(pay_links.c.invoice_id == invoices.c.id, pay_links.c.paylink_id == search)
    return sa.or_(
        invoices.c.invoice_number == search,
        invoices.c.customer_number == search,
        invoices.c.customer_name.icontains(search, autoescape=True),
        by_collection,
        by_pay_link,
    )


async def list_invoices(
    session: AsyncSession, tenant_id: uuid.UUID, filters: InvoiceFilter, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    # the current attempt: the latest one that was not withdrawn (else the latest), looked up per
    # listed invoice (a window over every collection of the tenant costs a tenant with many)
    current = (
        sa.select(collections)
        .where(collections.c.tenant_id == tenant_id, collections.c.invoice_id == invoices.c.id)
        .order_by((collections.c.status == "withdrawn").asc(), collections.c.attempt.desc())
        .limit(1)
        .lateral("current")
    )
    stmt = (
        sa.select(invoices, *[current.c[c.name].label(f"c_{c.name}") for c in collections.columns])
        .select_from(invoices.outerjoin(current, sa.true()))
        .where(invoices.c.tenant_id == tenant_id)
    )
    if filters.search:
        stmt = stmt.where(_matches(tenant_id, filters.search))
    if filters.customer_number:
        stmt = stmt.where(invoices.c.customer_number == filters.customer_number)
    if filters.invoice_number:
        stmt = stmt.where(invoices.c.invoice_number == filters.invoice_number)
    if filters.subscription_reference:
        stmt = stmt.where(invoices.c.subscription_reference == filters.subscription_reference)
    if filters.due_from:
        stmt = stmt.where(invoices.c.due_date >= filters.due_from)
    if filters.due_to:
        stmt = stmt.where(invoices.c.due_date <= filters.due_to)
    if filters.status == "open":  # posted, no attempt yet
        attempted = sa.exists().where(collections.c.tenant_id == tenant_id, collections.c.invoice_id == invoices.c.id)
        stmt = stmt.where(~attempted, invoices.c.withdrawn_at.is_(None))
    elif filters.status:
        # Only invoices with an attempt in that status can be in it: found through the status
        # index first, so a rare status does not look at every invoice's current attempt.
        candidates = sa.select(collections.c.invoice_id).where(
            collections.c.tenant_id == tenant_id, collections.c.status == filters.status
        )
        stmt = stmt.where(invoices.c.id.in_(candidates), current.c.status == filters.status)
    if cursor:
        stmt = stmt.where(invoices.c.seq > decode_cursor(cursor))
    stmt = stmt.order_by(invoices.c.seq).limit(limit + 1)
    rows = (await session.execute(stmt)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    links = await _pay_links(session, [r.id for r in rows])
    items = [invoice_view(r, [_prefixed(r)] if r.c_id else [], links.get(r.id)) for r in rows]
    next_cursor = encode_cursor(rows[-1].seq) if more and rows else None
    return items, next_cursor


def _prefixed(row: Any) -> dict[str, Any]:
    return {c.name: getattr(row, f"c_{c.name}") for c in collections.columns}


async def _pay_links(session: AsyncSession, invoice_ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    if not invoice_ids:
        return {}
    rows = (await session.execute(sa.select(pay_links).where(pay_links.c.invoice_id.in_(invoice_ids)))).all()
    return {r.invoice_id: r for r in rows}


async def get_invoice(session: AsyncSession, tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> dict[str, Any]:
    invoice = await _invoice_row(session, tenant_id, invoice_id)
    rows = (
        await session.execute(
            sa.select(collections)
            .where(collections.c.tenant_id == tenant_id, collections.c.invoice_id == invoice_id)
            .order_by(collections.c.attempt)
        )
    ).all()
    links = await _pay_links(session, [invoice_id])
    return invoice_view(invoice, [dict(r._mapping) for r in rows], links.get(invoice_id))


def collection_view(c: dict[str, Any]) -> dict[str, Any]:
    return {
        "collection_id": str(c["id"]),
        "attempt": c["attempt"],
        "method": c["method"],
        "status": c["status"],
        "reason_code": c["reason_code"],
        "reason": c["reason"],
        "collect_on": c["collect_on"],
        "requested_date": c["requested_date"],
        "mandate_number": c["mandate_number"],
        # What the payment is at Twikey: pay links and transactions are numbered separately.
        "payment_kind": "paylink" if c["method"] == "paylink" else "transaction",
        "twikey_id": c["twikey_transaction_id"],
        "twikey_transaction_id": c["twikey_transaction_id"] if c["method"] != "paylink" else None,
        "r_code": c["r_code"],
        "r_code_meaning": rcodes.meaning(c["r_code"]),
        "submitted_at": c["submitted_at"],
        "paid_at": c["paid_at"],
        "version": c["version"],
        "updated_at": c["updated_at"],
    }


def invoice_view(invoice: Any, attempts: list[dict[str, Any]], link: Any) -> dict[str, Any]:
    live = [a for a in attempts if a["status"] != "withdrawn"]
    current = (live or attempts)[-1] if attempts else None
    status = "withdrawn" if invoice.withdrawn_at else (current["status"] if current else "open")
    return {
        "id": str(invoice.id),
        "invoice_number": invoice.invoice_number,
        "customer": {
            "number": invoice.customer_number,
            "name": invoice.customer_name,
            "email": invoice.customer_email,
        },
        "amount_cents": invoice.amount_cents,
        "currency": invoice.currency,
        "invoice_date": invoice.invoice_date,
        "due_date": invoice.due_date,
        "description": invoice.description,
        "subscription_reference": invoice.subscription_reference,
        "status": status,
        "collection": collection_view(current) if current else None,
        "attempts": [collection_view(a) for a in attempts],
        "pay_link": (
            {"state": link.state, "url": link.url, "paylink_id": link.paylink_id, "mandate_number": link.mandate_number}
            if link is not None
            else None
        ),
        "withdrawn_at": invoice.withdrawn_at,
        "created_at": invoice.created_at,
    }
