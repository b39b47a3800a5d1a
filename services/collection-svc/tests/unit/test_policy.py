"""The collection policy: when, whether and by which mandate an invoice is collected."""

from datetime import date

import pytest

from collection_svc.domain.policy import (
    CollectionPolicy,
    InvoiceFacts,
    MandateView,
    Scheduled,
    Skipped,
    SkipReason,
    SubscriptionView,
    best_mandate,
    check_policy,
    collect_date,
    decide,
)

TODAY = date(2026, 2, 1)
ACTIVE = MandateView("KOP0001", "active", max_amount_cents=None)


def invoice(amount: int = 10_000, due: date = date(2026, 2, 15)) -> InvoiceFacts:
    return InvoiceFacts(amount, due)


def test_invoice_is_scheduled_lead_days_before_its_due_date() -> None:
    decision = decide(invoice(), CollectionPolicy(lead_days=3), ACTIVE, TODAY)
    assert isinstance(decision, Scheduled)
    assert decision.collect_on == date(2026, 2, 12)
    assert decision.requested_date == date(2026, 2, 12)
    assert decision.mandate_number == "KOP0001" and decision.kind == "due"
    assert "2026-02-12" in decision.reason


def test_zero_lead_days_collects_on_the_due_date() -> None:
    decision = decide(invoice(), CollectionPolicy(lead_days=0), ACTIVE, TODAY)
    assert isinstance(decision, Scheduled) and decision.collect_on == date(2026, 2, 15)


def test_invoice_posted_inside_the_lead_time_is_collected_today_not_in_the_past() -> None:
    assert collect_date(date(2026, 2, 2), 5, TODAY) == TODAY
    decision = decide(invoice(due=date(2026, 2, 2)), CollectionPolicy(lead_days=5), ACTIVE, TODAY)
    assert isinstance(decision, Scheduled) and decision.collect_on == TODAY


@pytest.mark.parametrize(
    ("amount", "collected"), [(49_999, True), (50_000, True), (50_001, False)], ids=["below", "at", "above"]
)
def test_tenant_limit_at_below_and_above_the_edge(amount: int, collected: bool) -> None:
    decision = decide(invoice(amount), CollectionPolicy(max_amount_cents=50_000), ACTIVE, TODAY)
    if collected:
        assert isinstance(decision, Scheduled)
    else:
        assert isinstance(decision, Skipped) and decision.code == SkipReason.ABOVE_TENANT_LIMIT
        assert "€500.01" in decision.reason and "€500.00" in decision.reason
        assert not decision.offer_paylink


@pytest.mark.parametrize(
    ("amount", "collected"), [(19_999, True), (20_000, True), (20_001, False)], ids=["below", "at", "above"]
)
def test_debtor_mandate_limit_at_below_and_above_the_edge(amount: int, collected: bool) -> None:
    mandate = MandateView("KOP0001", "active", max_amount_cents=20_000)
    decision = decide(invoice(amount), CollectionPolicy(), mandate, TODAY)
    if collected:
        assert isinstance(decision, Scheduled)
    else:
        assert isinstance(decision, Skipped) and decision.code == SkipReason.ABOVE_MANDATE_LIMIT


def test_tenant_limit_is_checked_before_the_debtor_limit() -> None:
    mandate = MandateView("KOP0001", "active", max_amount_cents=100)
    decision = decide(invoice(1_000), CollectionPolicy(max_amount_cents=500), mandate, TODAY)
    assert isinstance(decision, Skipped) and decision.code == SkipReason.ABOVE_TENANT_LIMIT


def test_invoice_without_mandate_is_skipped_and_offered_a_pay_link() -> None:
    decision = decide(invoice(), CollectionPolicy(), None, TODAY)
    assert isinstance(decision, Skipped) and decision.code == SkipReason.NO_MANDATE and decision.offer_paylink


def test_no_pay_link_when_the_tenant_does_not_want_one() -> None:
    decision = decide(invoice(), CollectionPolicy(paylink_when_no_mandate=False), None, TODAY)
    assert isinstance(decision, Skipped) and not decision.offer_paylink


def test_suspended_mandate_skips_with_reason_and_no_pay_link() -> None:
    decision = decide(invoice(), CollectionPolicy(), MandateView("KOP0001", "suspended"), TODAY)
    assert isinstance(decision, Skipped) and decision.code == SkipReason.MANDATE_SUSPENDED
    assert "KOP0001" in decision.reason and not decision.offer_paylink


@pytest.mark.parametrize("status", ["cancelled", "rejected", "expired"])
def test_ended_mandate_skips_as_cancelled_and_offers_a_pay_link(status: str) -> None:
    decision = decide(invoice(), CollectionPolicy(), MandateView("KOP0001", status), TODAY)
    assert isinstance(decision, Skipped) and decision.code == SkipReason.MANDATE_CANCELLED
    assert decision.offer_paylink


@pytest.mark.parametrize("status", ["requested", "prepared", "pending_bank"])
def test_mandate_not_yet_signed_skips_as_not_active(status: str) -> None:
    decision = decide(invoice(), CollectionPolicy(), MandateView("KOP0001", status), TODAY)
    assert isinstance(decision, Skipped) and decision.code == SkipReason.MANDATE_NOT_ACTIVE


def test_auto_collect_off_holds_the_invoice_for_manual_collection() -> None:
    decision = decide(invoice(), CollectionPolicy(auto_collect=False), ACTIVE, TODAY)
    assert isinstance(decision, Skipped) and decision.code == SkipReason.AUTO_COLLECT_OFF


def test_manual_collect_goes_today_even_with_auto_collect_off() -> None:
    decision = decide(invoice(), CollectionPolicy(auto_collect=False), ACTIVE, TODAY, manual=True)
    assert isinstance(decision, Scheduled) and decision.collect_on == TODAY == decision.requested_date
    assert decision.kind == "manual"


def test_manual_collect_still_respects_the_limits() -> None:
    decision = decide(invoice(60_000), CollectionPolicy(max_amount_cents=50_000), ACTIVE, TODAY, manual=True)
    assert isinstance(decision, Skipped) and decision.code == SkipReason.ABOVE_TENANT_LIMIT


def test_subscription_invoice_is_claimed_at_once_with_bank_date_by_lead_days() -> None:
    sub = SubscriptionView("SUB-1", collect_automatically=True)
    decision = decide(invoice(), CollectionPolicy(lead_days=3), ACTIVE, TODAY, sub)
    assert isinstance(decision, Scheduled)
    assert decision.collect_on == TODAY
    assert decision.requested_date == date(2026, 2, 12)
    assert decision.kind == "subscription" and "SUB-1" in decision.reason


def test_subscription_that_collects_automatically_overrides_auto_collect_off() -> None:
    sub = SubscriptionView("SUB-1", collect_automatically=True)
    decision = decide(invoice(), CollectionPolicy(auto_collect=False), ACTIVE, TODAY, sub)
    assert isinstance(decision, Scheduled) and decision.collect_on == TODAY


def test_subscription_without_automatic_collection_holds_its_invoices() -> None:
    sub = SubscriptionView("SUB-1", collect_automatically=False)
    decision = decide(invoice(), CollectionPolicy(auto_collect=True), ACTIVE, TODAY, sub)
    assert isinstance(decision, Skipped) and decision.code == SkipReason.SUBSCRIPTION_MANUAL


def test_subscription_claim_still_needs_an_active_mandate() -> None:
    sub = SubscriptionView("SUB-1", collect_automatically=True)
    decision = decide(invoice(), CollectionPolicy(), MandateView("KOP1", "suspended"), TODAY, sub)
    assert isinstance(decision, Skipped) and decision.code == SkipReason.MANDATE_SUSPENDED


def test_inactive_subscription_falls_back_to_the_tenant_policy() -> None:
    sub = SubscriptionView("SUB-1", collect_automatically=True, active=False)
    decision = decide(invoice(), CollectionPolicy(lead_days=3), ACTIVE, TODAY, sub)
    assert isinstance(decision, Scheduled) and decision.collect_on == date(2026, 2, 12)


def test_best_mandate_prefers_active_then_most_recent() -> None:
    old_active = MandateView("A", "active", updated_rank=1)
    new_active = MandateView("B", "active", updated_rank=2)
    cancelled = MandateView("C", "cancelled", updated_rank=3)
    suspended = MandateView("D", "suspended", updated_rank=4)
    assert best_mandate([cancelled, old_active, suspended, new_active]) == new_active
    assert best_mandate([cancelled, suspended]) == suspended
    assert best_mandate([cancelled]) == cancelled
    assert best_mandate([]) is None


def test_policy_refuses_never_retry_codes_and_bad_ranges() -> None:
    problems = check_policy(CollectionPolicy(retry_r_codes=("AM04", "MD06", "XX99"), lead_days=-1, max_attempts=0))
    rules = {(p.field, p.rule) for p in problems}
    assert ("retry_r_codes", "never_retry") in rules
    assert ("retry_r_codes", "known_r_code") in rules
    assert ("lead_days", "range") in rules
    assert ("max_attempts", "range") in rules
    assert check_policy(CollectionPolicy()) == []
