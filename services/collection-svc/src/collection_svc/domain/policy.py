"""The collection policy: whether, when and by which mandate an invoice is collected, and whether
a failed collection is tried again. Pure functions on plain values; the service layer feeds them
the tenant's policy, the customer's mandate projection and the clock.

Rules, in the order they are checked (the first that applies gives the reason):
1. the invoice's subscription says "do not collect automatically", or the tenant turned automatic
   collection off (and no subscription claims the invoice) → held for manual collection;
2. no usable mandate: none at all or only ended ones (cancelled, rejected, expired) → skipped
   ``no_mandate`` (a pay link is offered when the tenant wants one); one awaiting signature or the
   bank → ``mandate_not_active``; suspended → ``mandate_suspended``;
3. amount above the tenant's maximum per invoice → ``above_tenant_limit`` (equal is allowed);
4. amount above the debtor's own mandate maximum → ``above_mandate_limit`` (equal is allowed);
5. otherwise scheduled: collect on due date − lead days (never in the past); an invoice of a
   subscription that collects automatically is claimed at once (submitted today), with the bank
   collection date still following the lead days.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from collection_svc.domain import rcodes

DEFAULT_RETRY_R_CODES = ("AM04",)


class SkipReason(StrEnum):
    AUTO_COLLECT_OFF = "auto_collect_off"
    SUBSCRIPTION_MANUAL = "subscription_manual"
    NO_MANDATE = "no_mandate"
    MANDATE_NOT_ACTIVE = "mandate_not_active"
    MANDATE_SUSPENDED = "mandate_suspended"
    MANDATE_CANCELLED = "mandate_cancelled"
    ABOVE_TENANT_LIMIT = "above_tenant_limit"
    ABOVE_MANDATE_LIMIT = "above_mandate_limit"


@dataclass(frozen=True)
class CollectionPolicy:
    auto_collect: bool = True
    lead_days: int = 3
    max_amount_cents: int | None = None
    notify_debtor: bool = True
    paylink_when_no_mandate: bool = True
    retry_r_codes: tuple[str, ...] = DEFAULT_RETRY_R_CODES
    retry_after_days: int = 5
    max_attempts: int = 2  # the first collection and one retry
    # texts for Twikey transliterated into the SEPA set instead of refused (domain.texts)
    transliterate_text: bool = False


@dataclass(frozen=True)
class MandateView:
    """collection-svc's projection of one mandate of a customer (from mandate.* events)."""

    mandate_number: str | None
    status: str  # requested|prepared|pending_bank|active|suspended|cancelled|rejected|expired
    max_amount_cents: int | None = None
    updated_rank: int = 0  # larger = more recent; only used to pick among equals


@dataclass(frozen=True)
class SubscriptionView:
    reference: str
    collect_automatically: bool
    active: bool = True


@dataclass(frozen=True)
class InvoiceFacts:
    amount_cents: int
    due_date: date


@dataclass(frozen=True)
class Scheduled:
    collect_on: date  # when the scheduler submits it
    requested_date: date  # the collection date asked of Twikey/the bank
    mandate_number: str
    reason: str
    kind: str = "due"  # due|subscription|manual: why this date


@dataclass(frozen=True)
class Skipped:
    code: SkipReason
    reason: str
    offer_paylink: bool = False


Decision = Scheduled | Skipped

_ENDED = frozenset({"cancelled", "rejected", "expired"})
_PENDING = frozenset({"requested", "prepared", "pending_bank"})
_PREFERENCE = {"active": 0, "suspended": 1, "pending_bank": 2, "prepared": 3, "requested": 4}


def euros(cents: int) -> str:
    return f"€{cents // 100}.{cents % 100:02d}"


def best_mandate(mandates: Iterable[MandateView]) -> MandateView | None:
    """The mandate that governs a customer's collections: an active one first (the most recent),
    then a suspended one, then one still being signed; ended mandates only if nothing else."""
    ranked = sorted(mandates, key=lambda m: (_PREFERENCE.get(m.status, 9), -m.updated_rank))
    return ranked[0] if ranked else None


def collect_date(due_date: date, lead_days: int, today: date) -> date:
    """Due date minus lead days, but never before today (an invoice posted late goes at once)."""
    return max(due_date - timedelta(days=lead_days), today)


def decide(
    invoice: InvoiceFacts,
    policy: CollectionPolicy,
    mandate: MandateView | None,
    today: date,
    subscription: SubscriptionView | None = None,
    manual: bool = False,
) -> Decision:
    """Decide what happens to an invoice now. ``manual`` = the ERP asked to collect it now."""
    claimed = subscription is not None and subscription.active and subscription.collect_automatically
    if not manual:
        if subscription is not None and subscription.active and not subscription.collect_automatically:
            return Skipped(
                SkipReason.SUBSCRIPTION_MANUAL,
                f"subscription {subscription.reference} is not collected automatically; collect it by hand",
            )
        if not claimed and not policy.auto_collect:
            return Skipped(SkipReason.AUTO_COLLECT_OFF, "automatic collection is off for this tenant; collect by hand")

    if mandate is None or mandate.status in _ENDED:
        if mandate is None:
            return Skipped(
                SkipReason.NO_MANDATE, "the customer has no mandate", offer_paylink=policy.paylink_when_no_mandate
            )
        return Skipped(
            SkipReason.MANDATE_CANCELLED,
            f"the customer's mandate {mandate.mandate_number or ''} is {mandate.status}".replace("  ", " "),
            offer_paylink=policy.paylink_when_no_mandate,
        )
    if mandate.status == "suspended":
        return Skipped(SkipReason.MANDATE_SUSPENDED, f"mandate {mandate.mandate_number} is suspended")
    if mandate.status != "active" or not mandate.mandate_number:
        return Skipped(SkipReason.MANDATE_NOT_ACTIVE, f"the customer's mandate is not active yet ({mandate.status})")

    if policy.max_amount_cents is not None and invoice.amount_cents > policy.max_amount_cents:
        return Skipped(
            SkipReason.ABOVE_TENANT_LIMIT,
            f"amount {euros(invoice.amount_cents)} is above the tenant's maximum of {euros(policy.max_amount_cents)}",
        )
    if mandate.max_amount_cents is not None and invoice.amount_cents > mandate.max_amount_cents:
        return Skipped(
            SkipReason.ABOVE_MANDATE_LIMIT,
            f"amount {euros(invoice.amount_cents)} is above the debtor's mandate maximum of "
            f"{euros(mandate.max_amount_cents)}",
        )

    requested = collect_date(invoice.due_date, policy.lead_days, today)
    if manual:
        return Scheduled(today, today, mandate.mandate_number, "collect now, requested by hand", "manual")
    if claimed:
        assert subscription is not None
        return Scheduled(
            today,
            requested,
            mandate.mandate_number,
            f"claimed by subscription {subscription.reference}; bank collection on {requested.isoformat()}",
            "subscription",
        )
    return Scheduled(
        requested,
        requested,
        mandate.mandate_number,
        f"scheduled for {requested.isoformat()} ({policy.lead_days} days before the due date)",
    )


# --------------------------------------------------------------------------- retries
@dataclass(frozen=True)
class Retry:
    collect_on: date
    reason: str


@dataclass(frozen=True)
class NoRetry:
    reason: str


def retry_decision(r_code: str | None, attempt: int, policy: CollectionPolicy, today: date) -> Retry | NoRetry:
    """After a failed (or reversed) direct debit: try again once after N days for the R-codes the
    policy allows (insufficient funds by default); never for codes where the debtor or the mandate
    said no; never beyond ``max_attempts``."""
    code = (r_code or "").strip().upper()
    if not code:
        return NoRetry("no bank reason code: not retried automatically")
    if rcodes.never_retry(code):
        return NoRetry(f"{code} is never retried automatically")
    if code not in policy.retry_r_codes:
        return NoRetry(f"{code} is not retried under the tenant's policy")
    if attempt >= policy.max_attempts:
        return NoRetry(f"attempt {attempt} of {policy.max_attempts}: no retries left")
    when = today + timedelta(days=policy.retry_after_days)
    return Retry(when, f"retry {attempt + 1} of {policy.max_attempts} after {code} ({rcodes.meaning(code)})")


@dataclass(frozen=True)
class PolicyProblem:
    field: str
    rule: str
    message: str


def check_policy(policy: CollectionPolicy) -> Sequence[PolicyProblem]:
    problems: list[PolicyProblem] = []
    if not 0 <= policy.lead_days <= 60:
        problems.append(PolicyProblem("lead_days", "range", "lead_days must be between 0 and 60"))
    if policy.max_amount_cents is not None and policy.max_amount_cents <= 0:
        problems.append(PolicyProblem("max_amount_cents", "positive", "max_amount_cents must be above 0"))
    if not 1 <= policy.retry_after_days <= 60:
        problems.append(PolicyProblem("retry_after_days", "range", "retry_after_days must be between 1 and 60"))
    if not 1 <= policy.max_attempts <= 5:
        problems.append(PolicyProblem("max_attempts", "range", "max_attempts must be between 1 and 5"))
    for code in policy.retry_r_codes:
        if rcodes.lookup(code) is None:
            problems.append(PolicyProblem("retry_r_codes", "known_r_code", f"{code} is not a known SEPA R-code"))
        elif rcodes.never_retry(code):
            problems.append(
                PolicyProblem("retry_r_codes", "never_retry", f"{code} ({rcodes.meaning(code)}) may never be retried")
            )
    return problems


__all__ = [
    "CollectionPolicy",
    "Decision",
    "InvoiceFacts",
    "MandateView",
    "NoRetry",
    "PolicyProblem",
    "Retry",
    "Scheduled",
    "SkipReason",
    "Skipped",
    "SubscriptionView",
    "best_mandate",
    "check_policy",
    "collect_date",
    "decide",
    "retry_decision",
]
