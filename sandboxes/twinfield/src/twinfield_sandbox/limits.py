"""Twinfield's fair-use policy (reference §7): credits per sliding minute per IP, per client and
per client+organisation (reads 1, writes 3), concurrent requests per client and per
client+organisation, and the ledger of credits spent that benchmarks read back.

A request over any limit gets HTTP 429 with `Retry-After` and is not processed, and is not
charged.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from .config import LimitConfig

READ_ROOTS = {"list", "read", "columns", "accountcode", "accountcodes"}


def cost_of(root_tag: str, config: LimitConfig) -> int:
    """ProcessXml requests whose root is a query cost 1 credit, anything else 3 (FUP)."""
    return config.read_cost if root_tag in READ_ROOTS else config.write_cost


@dataclass
class Rejection:
    reason: str
    retry_after: int
    limit: int
    remaining: int


@dataclass
class Admission:
    limit: int
    remaining: int
    cost: int
    keys: tuple[str, str]


@dataclass
class Ledger:
    credits: int = 0
    requests: int = 0
    rejected: int = 0
    by_operation: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "credits": self.credits,
            "requests": self.requests,
            "rejected_429": self.rejected,
            "credits_by_operation": dict(self.by_operation),
        }


class Limiter:
    def __init__(self, config: LimitConfig) -> None:
        self.config = config
        self.windows: dict[str, deque[tuple[float, int]]] = {}
        self.inflight: dict[str, int] = {}
        self.by_client: dict[str, Ledger] = {}
        self.by_client_org: dict[tuple[str, str], Ledger] = {}

    def _budgets(self, client_id: str, organisation: str, ip: str, certified: bool) -> list[tuple[str, int]]:
        c = self.config
        return [
            (f"ip:{ip}", c.per_ip),
            (f"client:{client_id}", c.per_client_certified if certified else c.per_client_uncertified),
            (
                f"client-org:{client_id}:{organisation}",
                c.per_client_org_certified if certified else c.per_client_org_uncertified,
            ),
        ]

    def _used(self, key: str, now: float) -> int:
        window = self.windows.setdefault(key, deque())
        horizon = now - self.config.window_seconds
        while window and window[0][0] <= horizon:
            window.popleft()
        return sum(credits for _, credits in window)

    def _retry_after(self, key: str, limit: int, cost: int, now: float) -> int:
        """Seconds until enough of the window has expired for `cost` more credits."""
        used = self._used(key, now)
        for stamp, credits in self.windows[key]:
            used -= credits
            if used + cost <= limit:
                return max(1, math.ceil(stamp + self.config.window_seconds - now))
        return max(1, math.ceil(self.config.window_seconds))

    def admit(
        self,
        *,
        client_id: str,
        organisation: str,
        ip: str,
        certified: bool,
        operation: str,
        cost: int,
        now: float,
    ) -> Admission | Rejection:
        client_key = f"client:{client_id}"
        org_key = f"client-org:{client_id}:{organisation}"
        ledger = self.by_client.setdefault(client_id, Ledger())
        org_ledger = self.by_client_org.setdefault((client_id, organisation), Ledger())
        budgets = self._budgets(client_id, organisation, ip, certified)
        org_limit = budgets[2][1]
        if not self.config.enabled:
            self._charge(budgets, ledger, org_ledger, operation, cost, now)
            return Admission(org_limit, org_limit, cost, (client_key, org_key))
        concurrency = [
            (client_key, self.config.concurrency_per_client),
            (org_key, self.config.concurrency_per_client_org),
        ]
        for key, limit in concurrency:
            if self.inflight.get(key, 0) >= limit:
                ledger.rejected += 1
                org_ledger.rejected += 1
                return Rejection(f"concurrency limit {limit} reached for {key}", 1, limit, 0)
        for key, limit in budgets:
            used = self._used(key, now)
            if used + cost > limit:
                ledger.rejected += 1
                org_ledger.rejected += 1
                retry = self._retry_after(key, limit, cost, now)
                return Rejection(f"credit limit {limit}/min reached for {key}", retry, limit, max(0, limit - used))
        self._charge(budgets, ledger, org_ledger, operation, cost, now)
        remaining = org_limit - self._used(org_key, now)
        return Admission(org_limit, remaining, cost, (client_key, org_key))

    def _charge(self, budgets, ledger: Ledger, org_ledger: Ledger, operation: str, cost: int, now: float) -> None:
        for key, _ in budgets:
            self.windows.setdefault(key, deque()).append((now, cost))
        for book in (ledger, org_ledger):
            book.credits += cost
            book.requests += 1
            book.by_operation[operation] = book.by_operation.get(operation, 0) + cost

    def enter(self, admission: Admission) -> None:
        for key in admission.keys:
            self.inflight[key] = self.inflight.get(key, 0) + 1

    def leave(self, admission: Admission) -> None:
        for key in admission.keys:
            self.inflight[key] = max(0, self.inflight.get(key, 0) - 1)

    def report(self) -> dict:
        return {
            "clients": {client: ledger.as_dict() for client, ledger in self.by_client.items()},
            "client_organisations": [
                {"client_id": client, "organisation": org, **ledger.as_dict()}
                for (client, org), ledger in self.by_client_org.items()
            ],
            "inflight": {key: count for key, count in self.inflight.items() if count},
        }

    def reset_ledgers(self) -> None:
        self.by_client.clear()
        self.by_client_org.clear()

    def reset_windows(self) -> None:
        self.windows.clear()
