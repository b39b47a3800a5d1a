"""The rules of one delivery: what an answer means, when to try again, when to give up on an
endpoint.

- 2xx ends the delivery; 410 Gone disables the endpoint at once (the ERP told us to stop);
- anything else (other status, timeout, refused connection, refused address) is tried again on a
  schedule of growing delays with jitter that spans about three days, then the delivery fails;
- an endpoint that has failed every attempt for a while (``DisablePolicy``: at least N failures in
  a row over at least T) is disabled with a reason; one success resets the count.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# Delays after attempt 1, 2, …: 5 s … 24 h, ~2.8 days in all, 13 attempts.
DEFAULT_SCHEDULE: tuple[float, ...] = (
    5,
    30,
    120,
    600,
    1_800,
    3_600,
    7_200,
    14_400,
    28_800,
    43_200,
    57_600,
    86_400,
)


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    GONE = "gone"


def classify(status_code: int | None) -> Outcome:
    """``None`` = no answer (timeout, connection error, refused address)."""
    if status_code is not None and 200 <= status_code < 300:
        return Outcome.SUCCEEDED
    if status_code == 410:
        return Outcome.GONE
    return Outcome.RETRY


def next_delay(attempt: int, schedule: Sequence[float], jitter: float, rand: Callable[[], float]) -> float | None:
    """Seconds to wait after failed attempt number ``attempt`` (1-based), or None when the schedule
    is used up. ``rand`` gives a float in [0, 1); the delay varies by ±``jitter`` (a fraction) so
    that deliveries failing together do not come back together."""
    if attempt < 1 or attempt > len(schedule):
        return None
    base = schedule[attempt - 1]
    return max(0.0, base * (1 + jitter * (2 * rand() - 1)))


@dataclass(frozen=True)
class DisablePolicy:
    min_failures: int = 10
    failing_for: timedelta = timedelta(days=3)

    def reason(self, consecutive_failures: int, failing_since: datetime | None, now: datetime) -> str | None:
        """Why the endpoint should be disabled now, or None."""
        if failing_since is None or consecutive_failures < self.min_failures:
            return None
        if now - failing_since < self.failing_for:
            return None
        return (
            f"{consecutive_failures} deliveries in a row failed since {failing_since.isoformat(timespec='seconds')}; "
            "fix the endpoint, enable it again and redeliver what it missed"
        )


GONE_REASON = "the endpoint answered 410 Gone"
