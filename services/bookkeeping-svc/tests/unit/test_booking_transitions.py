"""The booking aggregate's transitions: for every state and every event, the state it leads to,
the event it publishes, or its refusal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from bookkeeping_svc.domain.booking import (
    Booking,
    IllegalTransition,
    Outcome,
    Published,
    Status,
    opened,
    reversed_unpaid,
)

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
S = Status
REFUSED = "refused"

EVENTS: dict[str, Callable[[Booking], Outcome]] = {
    "post": lambda b: b.post("NLA000001", "1001", ("VRK", "202500042", 1)),
    "answer": lambda b: b.answer("202500101", 2, NOW),
    "found_existing": lambda b: b.found_existing("202500101", 2, "NLA000001", "1001", NOW),
    "timeout": lambda b: b.timeout("unavailable", "OutcomeUnknown: timeout", 8, timedelta(seconds=5), NOW),
    "match": lambda b: b.match(NOW),
    "error": lambda b: b.error("validation", "Twinfield weigerde de boeking."),
    "retry": lambda b: b.retry(NOW),
    "pause": lambda b: b.pause("invalid_grant", "Verbind opnieuw."),
    "resume": lambda b: b.resume(NOW),
    "reverse": lambda b: b.reverse(date(2025, 3, 20), NOW),
    "counter_posting": lambda b: b.counter_posting(),
    "counter_booked": lambda b: b.counter_booked("202500202"),
    "reopen": lambda b: b.reopen(NOW),
    "open_error": lambda b: b.open_error("reconcile_difference", "paid_not_booked: no MEMO", "Kijk in Twinfield."),
}

# A booking as it stands in each state on the happy path (a MEMO from booked on).
STATES: dict[Status, dict[str, Any]] = {
    S.OPEN: {},
    S.POSTING: {},
    S.BOOKED: {"memo_number": "202500101", "memo_line": 2},
    S.MATCHED: {"memo_number": "202500101", "memo_line": 2, "matched_at": NOW},
    S.ERROR: {"error_code": "validation"},
    S.PAUSED: {"paused_from": S.OPEN, "error_code": "auth_lost"},
    S.REVERSING: {"memo_number": "202500101", "memo_line": 2, "reverse_requested": True},
    S.REVERSED: {"memo_number": "202500101", "memo_line": 2, "reverse_requested": True},
}

# state -> the events it allows -> (status afterwards, published event); every other event is refused.
TABLE: dict[Status, dict[str, tuple[Status, Published | None]]] = {
    S.OPEN: {
        "post": (S.POSTING, None),
        "found_existing": (S.BOOKED, None),
        "timeout": (S.OPEN, None),
        "error": (S.ERROR, Published.FAILED),
        "retry": (S.OPEN, None),
        "pause": (S.PAUSED, None),
        "reverse": (S.REVERSED, Published.REVERSED),
        "reopen": (S.POSTING, None),
        "open_error": (S.ERROR, None),
    },
    S.POSTING: {
        "post": (S.POSTING, None),
        "answer": (S.BOOKED, None),
        "found_existing": (S.BOOKED, None),
        "timeout": (S.POSTING, None),
        "error": (S.ERROR, Published.FAILED),
        "retry": (S.POSTING, None),
        "pause": (S.PAUSED, None),
        "reverse": (S.POSTING, None),  # maybe posted: looked up first
        "reopen": (S.POSTING, None),
        "open_error": (S.ERROR, None),
    },
    S.BOOKED: {
        "timeout": (S.BOOKED, None),
        "match": (S.MATCHED, Published.BOOKED),
        "error": (S.ERROR, Published.FAILED),
        "retry": (S.BOOKED, None),
        "pause": (S.PAUSED, None),
        "reverse": (S.REVERSING, None),
        "reopen": (S.POSTING, None),
        "open_error": (S.ERROR, None),
    },
    S.MATCHED: {
        "reverse": (S.REVERSING, None),
        "reopen": (S.POSTING, None),
        "open_error": (S.ERROR, None),
    },
    S.ERROR: {
        "retry": (S.POSTING, None),  # no MEMO number: look up before posting again
        "reverse": (S.REVERSED, Published.REVERSED),  # never reached Twinfield
        "reopen": (S.POSTING, None),
        "open_error": (S.ERROR, None),
    },
    S.PAUSED: {
        "resume": (S.OPEN, None),
        "reverse": (S.REVERSED, Published.REVERSED),
        "open_error": (S.ERROR, None),
    },
    S.REVERSING: {
        "timeout": (S.REVERSING, None),
        "error": (S.ERROR, Published.FAILED),
        "retry": (S.REVERSING, None),
        "pause": (S.PAUSED, None),
        "reverse": (S.REVERSING, None),  # a second reversal changes nothing
        "counter_posting": (S.REVERSING, None),
        "counter_booked": (S.REVERSED, Published.REVERSED),
        "open_error": (S.ERROR, None),
    },
    S.REVERSED: {
        "reverse": (S.REVERSED, None),
        "reopen": (S.POSTING, None),
        "open_error": (S.ERROR, None),
    },
}

CASES = [(state, event, TABLE[state].get(event, REFUSED)) for state in TABLE for event in EVENTS]


def test_the_table_covers_every_state_and_names_only_known_events() -> None:
    assert set(TABLE) == set(Status)
    assert all(set(row) <= set(EVENTS) for row in TABLE.values())


@pytest.mark.parametrize(("state", "event", "expected"), CASES, ids=[f"{s}-{e}" for s, e, _ in CASES])
def test_transition(state: Status, event: str, expected: tuple[Status, Published | None] | str) -> None:
    booking = Booking(status=state, **STATES[state])
    if expected == REFUSED:
        with pytest.raises(IllegalTransition) as refused:
            EVENTS[event](booking)
        assert refused.value.code == "booking_illegal_transition"
        assert booking == Booking(status=state, **STATES[state])  # a refusal changes nothing
        return
    assert isinstance(expected, tuple)
    outcome = EVENTS[event](booking)
    assert (booking.status, outcome.event) == expected
    assert outcome.changes.get("status", state) == booking.status


def test_an_answer_to_a_post_reversed_meanwhile_goes_on_to_the_counter_memo() -> None:
    booking = Booking(status=S.POSTING, reverse_requested=True)
    outcome = booking.answer("202500101", 2, NOW)
    assert booking.status == S.REVERSING and outcome.changes["memo_number"] == "202500101"


def test_a_reversed_booking_is_never_posted() -> None:
    booking = Booking(status=S.POSTING, reverse_requested=True)
    with pytest.raises(IllegalTransition):
        booking.post("NLA000001", "1001", ("VRK", "1", 1))
    outcome = booking.not_posted()
    assert booking.status == S.REVERSED and outcome.event == Published.REVERSED


def test_not_posted_needs_a_reversal() -> None:
    with pytest.raises(IllegalTransition):
        Booking(status=S.POSTING).not_posted()


def test_a_post_counts_the_attempt() -> None:
    booking = Booking(status=S.OPEN, attempts=2)
    assert booking.post("NLA000001", "1001", ("VRK", "1", 1)).changes["attempts"] == 3


def test_timeouts_double_the_wait_then_land_on_the_errors_list() -> None:
    booking = Booking(status=S.POSTING)
    first = booking.timeout("unavailable", "timeout", 3, timedelta(seconds=5), NOW)
    assert first.changes["next_attempt_at"] == NOW + timedelta(seconds=10) and first.event is None
    second = booking.timeout("unavailable", "timeout", 3, timedelta(seconds=5), NOW)
    assert second.changes["next_attempt_at"] == NOW + timedelta(seconds=20)
    third = booking.timeout("rate_limited", "429", 3, timedelta(seconds=5), NOW)
    assert booking.status == S.ERROR and third.event == Published.FAILED
    assert third.changes["error_code"] == "rate_limited"


def test_the_backoff_stops_doubling() -> None:
    booking = Booking(status=S.OPEN, transient_failures=20)
    outcome = booking.timeout("unavailable", "timeout", 100, timedelta(seconds=5), NOW)
    assert outcome.changes["next_attempt_at"] == NOW + timedelta(seconds=5 * 64)


def test_found_existing_keeps_a_known_customer_code() -> None:
    booking = Booking(status=S.POSTING, customer_code="1001")
    assert booking.found_existing("9", 2, "NLA000001", "2002", NOW).changes["customer_code"] == "1001"
    fresh = Booking(status=S.OPEN)
    assert fresh.found_existing("9", 2, "NLA000001", "2002", NOW).changes["customer_code"] == "2002"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"reverse_requested": True, "memo_number": "9"}, S.REVERSING),
        ({"memo_number": "9"}, S.BOOKED),
        ({}, S.POSTING),
    ],
)
def test_retry_picks_up_where_the_booking_failed(state: dict[str, Any], expected: Status) -> None:
    booking = Booking(status=S.ERROR, error_code="validation", transient_failures=5, **state)
    outcome = booking.retry(NOW)
    assert booking.status == expected and outcome.changes["transient_failures"] == 0


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ({"paused_from": S.REVERSING, "memo_number": "9"}, S.REVERSING),
        ({"paused_from": None, "memo_number": "9"}, S.BOOKED),
        ({"paused_from": None}, S.OPEN),
    ],
)
def test_resume_returns_to_where_the_booking_was_paused(state: dict[str, Any], expected: Status) -> None:
    booking = Booking(status=S.PAUSED, error_code="auth_lost", **state)
    booking.resume(NOW)
    assert booking.status == expected and booking.paused_from is None


def test_a_booking_failed_on_lost_consent_resumes() -> None:
    booking = Booking(status=S.ERROR, error_code="auth_lost", memo_number="9")
    booking.resume(NOW)
    assert booking.status == S.BOOKED


def test_pause_remembers_what_the_booking_was_doing() -> None:
    booking = Booking(status=S.BOOKED, memo_number="9")
    booking.pause("invalid_grant", "Verbind opnieuw.")
    assert (booking.status, booking.paused_from, booking.error_code) == (S.PAUSED, S.BOOKED, "auth_lost")


@pytest.mark.parametrize(
    ("state", "paused_from"),
    [({"paused_from": S.BOOKED, "memo_number": "9"}, S.REVERSING), ({"paused_from": S.POSTING}, S.POSTING)],
)
def test_a_reversal_while_paused_resumes_into_the_reversal(state: dict[str, Any], paused_from: Status) -> None:
    booking = Booking(status=S.PAUSED, **state)
    outcome = booking.reverse(date(2025, 3, 20), NOW)
    assert booking.status == S.PAUSED and booking.paused_from == paused_from and outcome.event is None


def test_an_unknown_outcome_error_is_looked_up_before_a_reversal_closes_it() -> None:
    booking = Booking(status=S.ERROR, error_code="unknown_outcome")
    booking.reverse(date(2025, 3, 20), NOW)
    assert booking.status == S.REVERSING and booking.reverse_requested


def test_a_reopened_booking_forgets_its_memo_and_is_looked_up_first() -> None:
    booking = Booking(status=S.MATCHED, memo_number="9", memo_line=2, matched_at=NOW, reverse_requested=True)
    outcome = booking.reopen(NOW)
    assert booking.status == S.POSTING and booking.memo_number is None and not booking.reverse_requested
    assert outcome.changes["matched_at"] is None and outcome.event is None


@pytest.mark.parametrize(
    ("consent_lost", "expected"),
    [(False, {"status": S.OPEN}), (True, {"status": S.PAUSED, "paused_from": S.OPEN})],
)
def test_a_new_booking_is_open_or_paused_to_resume_as_open(consent_lost: bool, expected: dict[str, Any]) -> None:
    assert opened(consent_lost) == expected


def test_a_reversal_heard_before_the_payment_makes_a_reversed_booking() -> None:
    state = reversed_unpaid(date(2025, 3, 20))
    booking = Booking(**state)
    assert booking.status == S.REVERSED and booking.reverse_requested
    assert booking.reverse(date(2025, 3, 21), NOW) == Outcome({})  # a late second reversal: nothing
