"""The circuit breaker of one endpoint: when it pauses, when it probes, how the pause grows."""

from __future__ import annotations

from notify_svc.domain.breaker import Breaker, BreakerPolicy, State

POLICY = BreakerPolicy(failures=3, cooldown=10.0, max_cooldown=40.0)


def test_the_breaker_opens_after_the_failures_in_a_row_and_lets_one_probe_through_after_the_pause() -> None:
    b = Breaker(POLICY)
    b.failed(0.0, started=0.0)
    b.failed(1.0, started=0.5)
    assert b.state(1.0) is State.CLOSED
    b.failed(2.0, started=1.5)
    assert b.state(2.0) is State.OPEN
    assert b.state(11.9) is State.OPEN
    assert b.state(12.0) is State.PROBE_DUE
    b.probe_started()
    assert b.state(13.0) is State.PROBING


def test_a_failed_probe_doubles_the_pause_up_to_the_maximum() -> None:
    b = Breaker(POLICY)
    for t in (0.0, 1.0, 2.0):
        b.failed(t, started=t)
    pauses = []
    now = 0.0
    for _ in range(4):
        now = b.until
        b.probe_started()
        b.failed(now, started=now, probe=True)
        pauses.append(b.until - now)
    assert pauses == [20.0, 40.0, 40.0, 40.0]


def test_attempts_that_were_in_flight_together_count_as_one_failure() -> None:
    b = Breaker(POLICY)
    for t in (8.0, 8.1, 8.2, 8.3):  # four attempts started at 0 s, all time out at 8 s
        b.failed(t, started=0.0)
    assert b.failures == 1
    assert b.state(8.3) is State.CLOSED
    b.failed(9.0, started=8.5)
    b.failed(10.0, started=9.5)
    assert b.state(10.0) is State.OPEN


def test_attempts_started_before_the_pause_do_not_extend_it() -> None:
    b = Breaker(POLICY)
    for t in (0.0, 1.0, 2.0):
        b.failed(t, started=t)
    b.failed(5.0, started=2.5)  # an attempt that was already in flight times out
    assert b.until == 12.0


def test_a_policy_of_zero_failures_never_opens() -> None:
    b = Breaker(BreakerPolicy(failures=0))
    for t in range(100):
        b.failed(float(t), started=float(t))
    assert b.state(100.0) is State.CLOSED


def test_a_breaker_with_nothing_to_probe_waits_another_pause_and_is_forgotten_after_long_idleness() -> None:
    b = Breaker(POLICY)
    for t in (-2.0, -1.0, 0.0):
        b.failed(t, started=t)
    b.nothing_to_probe(10.0)
    assert b.state(15.0) is State.OPEN
    assert b.state(20.0) is State.PROBE_DUE
    assert not b.forgotten(20.0)
    assert b.forgotten(81.0)
