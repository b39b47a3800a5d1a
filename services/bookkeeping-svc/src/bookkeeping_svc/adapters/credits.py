"""Twinfield's fair-use credits, one budget for every worker of this installation.

Twinfield counts credits per sliding minute per client id (1,000 for a certified client, shared
by every organisation we book for) and per client id + organisation (500); reads cost 1, writes
3, and a request over either limit gets a 429 (reference §7). A meter in each process cannot keep
to a limit that all processes share, so the budget lives in PostgreSQL: a token bucket per client
id and one per client id + organisation, each request reserving its cost from both in one
statement under the rows' locks.

A reservation always succeeds and says how long to wait: a bucket may go into debt, and the
caller sleeps until the refill has paid it off. Waiting callers therefore queue in the order they
reserved (fair between tenants), and a waiting booker's batch grows meanwhile, so the credits per
booking fall just when credits are scarce.

Staying inside a sliding window: a bucket refilled at ``r`` per window holding at most ``c`` lets
at most ``c + r`` through in any window, so ``c = limit × burst`` and ``r = limit − c``, of the
limit less a headroom: a request reaches Twinfield a little later than its credits were reserved
(the network; a batch reserves its post's credits before its look-up), which can bunch requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

# Keys are taken in sorted order, so two reservations never wait on each other's rows (deadlock).
_RESERVE = sa.text(
    """
    INSERT INTO twinfield_credit_buckets AS b (key, capacity, per_second, tokens, updated_at)
    SELECT k.key, k.capacity, k.per_second, k.capacity - :cost, clock_timestamp()
      FROM unnest(CAST(:keys AS text[]), CAST(:capacities AS float8[]), CAST(:rates AS float8[]))
           AS k(key, capacity, per_second)
     ORDER BY k.key
    ON CONFLICT (key) DO UPDATE SET
        capacity = EXCLUDED.capacity,
        per_second = EXCLUDED.per_second,
        tokens = least(
            EXCLUDED.capacity,
            b.tokens + EXCLUDED.per_second * extract(epoch FROM clock_timestamp() - b.updated_at)
        ) - :cost,
        updated_at = clock_timestamp()
    RETURNING b.tokens, b.per_second
    """
)

# Debt of ``seconds`` worth of refill at least: everyone spending from the bucket waits that long.
_BLOCK = sa.text(
    """
    UPDATE twinfield_credit_buckets
       SET tokens = least(
               capacity,
               tokens + per_second * extract(epoch FROM clock_timestamp() - updated_at),
               -per_second * :seconds
           ),
           updated_at = clock_timestamp()
     WHERE key = :key
    """
)


@dataclass(frozen=True)
class Limits:
    client: float  # credits per window for the client id
    organisation: float  # credits per window for the client id + organisation
    burst: float  # share of a window's credits that may go at once
    window_seconds: float = 60.0
    headroom: float = 0.0  # share of each limit left unused


class CreditBudget:
    def __init__(self, engine: AsyncEngine, client_id: str, limits: Limits) -> None:
        self.engine = engine
        self.client_id = client_id
        self.limits = limits
        self.spent = 0  # by this process, for metrics and tests

    def _organisation_key(self, organisation: str) -> str:
        return f"organisation:{self.client_id}:{organisation}"

    def _buckets(self, organisation: str) -> list[tuple[str, float, float]]:
        def bucket(key: str, limit: float) -> tuple[str, float, float]:
            usable = limit * (1 - self.limits.headroom)
            capacity = usable * self.limits.burst
            return key, capacity, (usable - capacity) / self.limits.window_seconds

        return sorted(
            [
                bucket(f"client:{self.client_id}", self.limits.client),
                bucket(self._organisation_key(organisation), self.limits.organisation),
            ]
        )

    async def reserve(self, organisation: str, cost: int) -> float:
        """Take ``cost`` credits from the client's and the organisation's bucket; the answer is
        how many seconds to wait before sending the request."""
        keys, capacities, rates = zip(*self._buckets(organisation), strict=True)
        async with self.engine.begin() as conn:
            rows = (
                await conn.execute(
                    _RESERVE, {"keys": list(keys), "capacities": list(capacities), "rates": list(rates), "cost": cost}
                )
            ).all()
        self.spent += cost
        return max(0.0, *(-tokens / per_second for tokens, per_second in rows if per_second > 0))

    async def refund(self, organisation: str, cost: int) -> None:
        """Twinfield did not charge a refused (429) request; neither do we."""
        await self.reserve(organisation, -cost)

    async def block(self, organisation: str, seconds: float) -> None:
        """Twinfield said 429 with ``Retry-After``: nobody spends for this organisation until then."""
        async with self.engine.begin() as conn:
            await conn.execute(_BLOCK, {"key": self._organisation_key(organisation), "seconds": seconds})
