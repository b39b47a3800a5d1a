"""When to stop trying an endpoint for a while: a circuit breaker per endpoint (per worker).

Each delivery has its own retry schedule, but a dead endpoint with a backlog always has some
delivery that is due, so without a breaker it is tried at its in-flight limit for as long as it is
dead, each attempt holding a socket and a slot for the whole deadline and writing to the database.

After ``failures`` failed attempts in a row the endpoint is paused for ``cooldown`` seconds (an
attempt counts only if it started after the last counted failure: attempts that were in flight
together and fail together — one stall of the endpoint or of this machine — are one piece of
evidence, not several); then
one delivery goes out as a probe while the others wait, still pending, in the database. A
successful probe closes the breaker (everything due flows again at once); a failed one pauses the
endpoint twice as long as before, up to ``max_cooldown``. Nothing is dropped or counted as an
attempt while paused: the pause only decides *when* the next attempt may start. Times are the
caller's monotonic clock in seconds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 3
    cooldown: float = 10.0
    max_cooldown: float = 300.0

    @property
    def enabled(self) -> bool:
        return self.failures > 0


class State(enum.StrEnum):
    CLOSED = "closed"  # attempts as usual
    OPEN = "open"  # paused: no attempt starts
    PROBE_DUE = "probe_due"  # the pause is over: one attempt may start
    PROBING = "probing"  # that attempt is in flight


@dataclass
class Breaker:
    policy: BreakerPolicy
    failures: int = 0
    opened: bool = False
    until: float = 0.0
    cooldown: float = 0.0
    probing: bool = False
    last_failure: float = 0.0
    counted_at: float = float("-inf")  # when the last failure that counted was seen

    def state(self, now: float) -> State:
        if not self.opened:
            return State.CLOSED
        if self.probing:
            return State.PROBING
        return State.OPEN if now < self.until else State.PROBE_DUE

    def failed(self, now: float, started: float, probe: bool = False) -> None:
        """An attempt that started at ``started`` failed. ``probe``: it was the one attempt let
        through after a pause."""
        self.last_failure = now
        if probe:
            self.probing = False
            self._pause(now, min(self.cooldown * 2, self.policy.max_cooldown))
            return
        if self.opened or started < self.counted_at:
            return  # in flight beside a failure already counted (or before the pause): nothing new
        self.counted_at = now
        self.failures += 1
        if self.policy.enabled and self.failures >= self.policy.failures:
            self.opened = True
            self._pause(now, self.policy.cooldown)

    def probe_started(self) -> None:
        self.probing = True

    def nothing_to_probe(self, now: float) -> None:
        """The pause was over but nothing was due: look again after another pause (same length)."""
        self._pause(now, self.cooldown)

    def forgotten(self, now: float) -> bool:
        """True when the endpoint has had nothing to send for longer than the longest pause: its
        breaker can be dropped (it starts afresh if it fails again)."""
        return not self.probing and now - self.last_failure > 2 * self.policy.max_cooldown

    def _pause(self, now: float, seconds: float) -> None:
        self.cooldown = seconds
        self.until = now + seconds
