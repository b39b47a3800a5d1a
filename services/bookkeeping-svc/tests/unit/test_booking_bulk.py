"""Pause, resume and requeue for many bookings at once go through each booking's own transition:
a booking whose state refuses it is left as it is, the others change exactly as one booking would,
and the states a bulk change loads hold every booking the transition allows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from bookkeeping_svc.domain.booking import (
    PAUSABLE,
    RESUMABLE,
    RETRYABLE,
    Booking,
    IllegalTransition,
    Outcome,
    Status,
    each,
)

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
S = Status

# Every state, and the variants that matter to these transitions (a MEMO, a reversal, lost consent).
BOOKINGS: dict[str, Booking] = {
    "open": Booking(S.OPEN),
    "posting": Booking(S.POSTING, attempts=1),
    "booked": Booking(S.BOOKED, memo_number="202500101", memo_line=2),
    "matched": Booking(S.MATCHED, memo_number="202500101", memo_line=2, matched_at=NOW),
    "error": Booking(S.ERROR, error_code="validation", transient_failures=3),
    "error-with-memo": Booking(S.ERROR, memo_number="202500101", error_code="unavailable"),
    "error-reversing": Booking(S.ERROR, memo_number="202500101", reverse_requested=True, error_code="validation"),
    "error-consent": Booking(S.ERROR, memo_number="202500101", error_code="auth_lost"),
    "paused-open": Booking(S.PAUSED, paused_from=S.OPEN, error_code="auth_lost"),
    "paused-reversing": Booking(S.PAUSED, paused_from=S.REVERSING, memo_number="9", error_code="auth_lost"),
    "reversing": Booking(S.REVERSING, memo_number="202500101", reverse_requested=True),
    "reversed": Booking(S.REVERSED, reverse_requested=True),
}

TRANSITIONS: dict[str, tuple[Callable[[Booking], Outcome], tuple[Status, ...]]] = {
    "pause": (lambda b: b.pause("invalid_grant", "Verbind opnieuw."), PAUSABLE),
    "resume": (lambda b: b.resume(NOW), RESUMABLE),
    "retry": (lambda b: b.retry(NOW), RETRYABLE),
}

# transition -> the bookings it changes, and the status each has afterwards; all others refuse.
EXPECTED: dict[str, dict[str, Status]] = {
    "pause": {"open": S.PAUSED, "posting": S.PAUSED, "booked": S.PAUSED, "reversing": S.PAUSED},
    "resume": {"error-consent": S.BOOKED, "paused-open": S.OPEN, "paused-reversing": S.REVERSING},
    "retry": {
        "open": S.OPEN,
        "posting": S.POSTING,
        "booked": S.BOOKED,
        "error": S.POSTING,  # no MEMO number: look it up before posting again
        "error-with-memo": S.BOOKED,
        "error-reversing": S.REVERSING,
        "error-consent": S.BOOKED,
        "reversing": S.REVERSING,
    },
}


def _copies() -> list[tuple[str, Booking]]:
    return [(key, Booking(**vars(b))) for key, b in BOOKINGS.items()]


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_each_changes_the_bookings_whose_state_allows_it_and_leaves_the_others(name: str) -> None:
    transition, _ = TRANSITIONS[name]
    states = _copies()
    done = each(states, transition)
    changed = {key: outcome.changes.get("status") for key, outcome in done.outcomes}
    assert {key: dict(states)[key].status for key in changed} == EXPECTED[name]
    assert set(done.refused) == set(BOOKINGS) - set(EXPECTED[name])
    for key in done.refused:
        assert dict(states)[key] == BOOKINGS[key]  # a refusal changes nothing
    assert all(outcome.event is None for _, outcome in done.outcomes)  # nothing to publish


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_each_does_what_the_transition_does_to_one_booking(name: str) -> None:
    transition, _ = TRANSITIONS[name]
    for key, outcome in each(_copies(), transition).outcomes:
        alone = Booking(**vars(BOOKINGS[key]))
        assert transition(alone).changes == outcome.changes


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_the_states_a_bulk_change_loads_hold_every_booking_it_may_change(name: str) -> None:
    transition, loaded = TRANSITIONS[name]
    for status in Status:
        booking = Booking(status, error_code="auth_lost", paused_from=S.OPEN if status == S.PAUSED else None)
        try:
            transition(booking)
        except IllegalTransition:
            continue
        assert status in loaded, f"{name} allows {status} but the bulk change never loads it"


def test_pause_then_resume_gives_back_what_each_booking_was_doing() -> None:
    states = [(k, b) for k, b in _copies() if b.status in PAUSABLE]
    before = {k: b.status for k, b in states}
    each(states, TRANSITIONS["pause"][0])
    assert {b.status for _, b in states} == {S.PAUSED}
    each(states, TRANSITIONS["resume"][0])
    assert {k: b.status for k, b in states} == before
    assert all(b.error_code is None and b.paused_from is None for _, b in states)
