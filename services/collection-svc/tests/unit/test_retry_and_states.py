"""Retry policy for failed collections, R-codes and the monotonic collection state machine."""

from datetime import date

import pytest

from collection_svc.domain import rcodes
from collection_svc.domain.policy import CollectionPolicy, NoRetry, Retry, retry_decision
from collection_svc.domain.states import Status, is_stale, on_refused, on_transaction_state

TODAY = date(2026, 3, 1)


def test_insufficient_funds_is_retried_once_after_n_days() -> None:
    decision = retry_decision("AM04", 1, CollectionPolicy(retry_after_days=5), TODAY)
    assert isinstance(decision, Retry)
    assert decision.collect_on == date(2026, 3, 6)
    assert "AM04" in decision.reason and "Insufficient funds" in decision.reason


def test_insufficient_funds_is_not_retried_a_second_time() -> None:
    decision = retry_decision("AM04", 2, CollectionPolicy(max_attempts=2), TODAY)
    assert isinstance(decision, NoRetry) and "no retries left" in decision.reason


@pytest.mark.parametrize("code", ["MD01", "MD06", "MS02", "AC04", "MD07"])
def test_mandate_and_refusal_codes_are_never_retried_even_if_configured(code: str) -> None:
    policy = CollectionPolicy(retry_r_codes=(code,), max_attempts=5)
    assert isinstance(retry_decision(code, 1, policy, TODAY), NoRetry)


def test_codes_outside_the_policy_are_not_retried() -> None:
    assert isinstance(retry_decision("MS03", 1, CollectionPolicy(), TODAY), NoRetry)
    assert isinstance(retry_decision("MS03", 1, CollectionPolicy(retry_r_codes=("AM04", "MS03")), TODAY), Retry)


def test_failure_without_a_code_is_not_retried() -> None:
    assert isinstance(retry_decision(None, 1, CollectionPolicy(), TODAY), NoRetry)


def test_r_code_table_gives_meanings_and_names_unknown_codes() -> None:
    assert rcodes.meaning("am04") == "Insufficient funds"
    assert rcodes.meaning("MD06") is not None and "Refund" in rcodes.meaning("MD06")  # type: ignore[operator]
    assert rcodes.meaning("ZZ01") == "Unknown bank reason code ZZ01"
    assert rcodes.meaning(None) is None
    assert rcodes.never_retry("MD01") and not rcodes.never_retry("AM04")


def test_paid_moves_a_submitted_collection_to_paid() -> None:
    t = on_transaction_state(Status.SUBMITTED, "PAID")
    assert t is not None and t.to == Status.PAID


def test_error_moves_a_submitted_collection_to_failed_with_the_r_code() -> None:
    t = on_transaction_state(Status.SUBMITTED, "ERROR", bank_error="am04", bank_message="no money")
    assert t is not None and t.to == Status.FAILED and t.r_code == "AM04"
    assert t.reason == "AM04: Insufficient funds"


def test_unpaid_counts_as_failed() -> None:
    t = on_transaction_state(Status.SUBMITTED, "UNPAID", bank_error="MS03")
    assert t is not None and t.to == Status.FAILED


def test_error_after_paid_is_a_reversal() -> None:
    t = on_transaction_state(Status.PAID, "ERROR", reversal=True, bank_error="MD06")
    assert t is not None and t.to == Status.REVERSED and t.r_code == "MD06"
    assert "reversed after payment" in (t.reason or "")


def test_reversal_is_recognised_from_our_own_state_without_the_flag() -> None:
    t = on_transaction_state(Status.PAID, "ERROR", reversal=False, bank_error="MD06")
    assert t is not None and t.to == Status.REVERSED


@pytest.mark.parametrize(
    ("current", "state"),
    [
        (Status.PAID, "PAID"),  # replayed PAID
        (Status.REVERSED, "PAID"),  # replay of the PAID before a reversal
        (Status.REVERSED, "ERROR"),  # replayed reversal
        (Status.FAILED, "ERROR"),  # replayed failure
        (Status.SUBMITTED, "OPEN"),
        (Status.SUBMITTED, "PENDING"),
        (Status.WITHDRAWN, "PAID"),
        (Status.SCHEDULED, "PAID"),
    ],
)
def test_states_never_move_backwards_or_repeat(current: Status, state: str) -> None:
    assert on_transaction_state(current, state, bank_error="MD06") is None


def test_late_paid_after_a_non_final_error_counts() -> None:
    t = on_transaction_state(Status.FAILED, "PAID")
    assert t is not None and t.to == Status.PAID


def test_cancelled_at_twikey_fails_the_collection() -> None:
    t = on_transaction_state(Status.SUBMITTED, "CANCELLED")
    assert t is not None and t.to == Status.FAILED


def test_refusal_fails_only_a_submitted_collection() -> None:
    t = on_refused(Status.SUBMITTED, "err_invalid_state", "mandate not active")
    assert t is not None and t.to == Status.FAILED and "err_invalid_state" in (t.reason or "")
    assert on_refused(Status.PAID, "err_invalid_state", "x") is None


def test_feed_messages_at_or_before_the_last_applied_are_stale() -> None:
    assert is_stale(5, 5) and is_stale(4, 5)
    assert not is_stale(6, 5) and not is_stale(1, None)
