"""What a collection policy does to an open collection when it is decided again, and so what a
proposed policy would do to the open invoices. The engine's ``redecide`` takes its decision from
``decide_open`` too, so a preview and the engine can never disagree.

An open collection (scheduled or skipped) is decided by ``policy.decide`` like a new one, except:
- a collection whose date was fixed by hand (collect-now) or by the retry policy keeps that date;
  only its mandate is checked again (``PINNED``);
- an invoice on a pay link stays on it (the engine does not decide it again at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from collection_svc.domain.policy import (
    CollectionPolicy,
    Decision,
    InvoiceFacts,
    MandateView,
    Scheduled,
    SubscriptionView,
    decide,
)

# Scheduled collections whose date was fixed by hand or by the retry policy keep that date.
PINNED = ("manual", "retry")


def is_pinned(status: str, reason_code: str | None) -> bool:
    return status == "scheduled" and reason_code in PINNED


def decide_open(
    status: str,
    reason_code: str | None,
    invoice: InvoiceFacts,
    policy: CollectionPolicy,
    mandate: MandateView | None,
    today: date,
    subscription: SubscriptionView | None,
) -> Decision:
    """The decision for an open collection; a pinned one that stays collectable comes back as
    ``Scheduled`` with ``kind`` manual, and the caller keeps its own date and reason."""
    return decide(invoice, policy, mandate, today, subscription, manual=is_pinned(status, reason_code))


@dataclass(frozen=True)
class OpenInvoice:
    """An open collection as the preview sees it (plain values)."""

    status: str  # scheduled | skipped
    reason_code: str | None
    reason: str | None
    collect_on: date | None
    amount_cents: int
    due_date: date
    on_paylink: bool


@dataclass(frozen=True)
class Outcome:
    status: str  # scheduled | skipped | paylink
    reason_code: str
    reason: str
    collect_on: date | None

    @property
    def text(self) -> str:
        if self.status == "skipped":
            return f"held: {self.reason}"
        return self.reason


def current(invoice: OpenInvoice) -> Outcome:
    if invoice.on_paylink:
        return Outcome("paylink", "paylink", "on its pay link: not collected by direct debit", None)
    return Outcome(invoice.status, invoice.reason_code or "", invoice.reason or "", invoice.collect_on)


def proposed(
    invoice: OpenInvoice,
    policy: CollectionPolicy,
    mandate: MandateView | None,
    today: date,
    subscription: SubscriptionView | None,
) -> Outcome:
    """What deciding the invoice again under ``policy`` gives (see the module)."""
    if invoice.on_paylink:
        return current(invoice)
    facts = InvoiceFacts(invoice.amount_cents, invoice.due_date)
    decision = decide_open(invoice.status, invoice.reason_code, facts, policy, mandate, today, subscription)
    if isinstance(decision, Scheduled):
        if is_pinned(invoice.status, invoice.reason_code):
            return current(invoice)
        return Outcome("scheduled", decision.kind, decision.reason, decision.collect_on)
    if decision.offer_paylink:
        return Outcome("paylink", str(decision.code), f"{decision.reason}; a pay link is offered instead", None)
    return Outcome("skipped", str(decision.code), decision.reason, None)
