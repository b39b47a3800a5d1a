"""``POST /v1/collection-policy/preview``: what a proposed policy would do to the tenant's open
invoices, computed with the engine's own rules (``domain/preview.py``) and storing nothing.

The tenant's open direct debits (scheduled or skipped, not withdrawn) are read without locks,
with each customer's mandate chosen as the engine chooses it (``best_mandate``), the invoice's
subscription and whether the invoice is on a pay link.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import asdict
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from collection_svc.adapters.orm import collections, invoices, mandates, subscriptions
from collection_svc.domain.policy import CollectionPolicy, MandateView, SubscriptionView, best_mandate, check_policy
from collection_svc.domain.preview import OpenInvoice, Outcome, current, proposed
from collection_svc.domain.states import OPEN
from collection_svc.service_layer.engine import DIRECT_DEBIT
from collection_svc.service_layer.records import CollectionRecord, load_records, open_paylink_invoices
from koppel_shared.web.errors import Problem

NOTE = (
    "Saving a policy does not move collections already decided: an open invoice follows the "
    "proposed policy from its next decision (its customer's mandate changes, or the invoice is "
    "corrected); new invoices follow it at once."
)


def normalised(policy: CollectionPolicy) -> CollectionPolicy:
    """The policy as ``PUT`` would store it, or the same 422 ``PUT`` answers."""
    policy = CollectionPolicy(
        **{**asdict(policy), "retry_r_codes": tuple(sorted({c.strip().upper() for c in policy.retry_r_codes}))}
    )
    problems = check_policy(policy)
    if problems:
        raise Problem(
            422,
            "validation_error",
            "; ".join(f"{p.field}: {p.message}" for p in problems),
            "Invalid request",
            errors=[{"field": p.field, "rule": p.rule, "message": p.message} for p in problems],
        )
    return policy


def _amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


async def _mandates(session: AsyncSession, tenant_id: uuid.UUID, customers: set[str]) -> dict[str, MandateView]:
    by_customer: dict[str, list[MandateView]] = defaultdict(list)
    if customers:
        rows = await session.execute(
            sa.select(mandates).where(mandates.c.tenant_id == tenant_id, mandates.c.customer_number.in_(customers))
        )
        for r in rows:
            by_customer[r.customer_number].append(
                # the same view ``records.customer_mandate`` builds for the engine
                MandateView(r.mandate_number, r.status, r.max_amount_cents, int(r.updated_at.timestamp() * 1000))
            )
    return {c: m for c, views in by_customer.items() if (m := best_mandate(views)) is not None}


async def _subscriptions(
    session: AsyncSession, tenant_id: uuid.UUID, references: set[str]
) -> dict[str, SubscriptionView]:
    if not references:
        return {}
    rows = await session.execute(
        sa.select(subscriptions).where(
            subscriptions.c.tenant_id == tenant_id, subscriptions.c.reference.in_(references)
        )
    )
    return {r.reference: SubscriptionView(r.reference, r.collect_automatically, r.active) for r in rows}


def _item(rec: CollectionRecord, now: Outcome, then: Outcome) -> dict[str, Any]:
    return {
        "invoice_id": str(rec.invoice_id),
        "invoice_number": rec.invoice_number,
        "customer_number": rec.customer_number,
        "amount": _amount(rec.amount_cents),
        "amount_cents": rec.amount_cents,
        "due_date": rec.due_date,
        "now": now.text,
        "now_status": now.status,
        "now_reason_code": now.reason_code,
        "then": then.text,
        "then_status": then.status,
        "then_reason_code": then.reason_code,
        "collect_on": then.collect_on,
        "changed": (now.status, now.reason_code, now.collect_on) != (then.status, then.reason_code, then.collect_on),
    }


async def preview(
    session: AsyncSession, tenant_id: uuid.UUID, policy: CollectionPolicy, today: date, limit: int
) -> dict[str, Any]:
    policy = normalised(policy)
    recs = await load_records(
        session,
        collections.c.tenant_id == tenant_id,
        invoices.c.withdrawn_at.is_(None),
        collections.c.method == DIRECT_DEBIT,
        collections.c.status.in_([str(s) for s in OPEN]),
        lock=False,
    )
    recs.sort(key=lambda r: (r.due_date, r.invoice_number, str(r.invoice_id)))
    mandate_of = await _mandates(session, tenant_id, {r.customer_number for r in recs})
    subscription_of = await _subscriptions(
        session, tenant_id, {r.subscription_reference for r in recs if r.subscription_reference}
    )
    on_link = await open_paylink_invoices(session, [r.invoice_id for r in recs])
    counts = {"scheduled": 0, "skipped": 0, "paylink": 0}
    changed = 0
    items: list[dict[str, Any]] = []
    for rec in recs:
        facts = OpenInvoice(
            rec.status,
            rec.reason_code,
            rec.reason,
            rec.collect_on,
            rec.amount_cents,
            rec.due_date,
            rec.invoice_id in on_link,
        )
        then = proposed(
            facts,
            policy,
            mandate_of.get(rec.customer_number),
            today,
            subscription_of.get(rec.subscription_reference or ""),
        )
        item = _item(rec, current(facts), then)
        counts[then.status] += 1
        changed += bool(item["changed"])
        if len(items) < limit:
            items.append(item)
    return {
        "summary": {
            "open_invoices": len(recs),
            "would_collect": counts["scheduled"],
            "would_hold": counts["skipped"],
            "pay_links": counts["paylink"],
            "changed": changed,
            "listed": len(items),
        },
        "note": NOTE,
        "invoices": items,
    }
