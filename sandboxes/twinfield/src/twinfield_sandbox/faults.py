"""Fault injection rules set through the control API.

A rule names an operation (`transactions`, `match`, `columns`, `read`, `list`, `dimensions`,
`token`, or `*`), a kind, a firing rate and an optional count:

- `error`: answer with HTTP `status` (5xx) and a SOAP fault, `before` the request is processed or
  `after` it was applied (the write happened, the client cannot know).
- `timeout`: hold the request for `delay_seconds`, then answer 504; `after` applies the write
  first, which is the case a client must not blindly retry.
- `rate_limit`: HTTP 429 with `Retry-After: retry_after`, nothing processed.
- `expired_token`: the SOAP fault of an expired access token (354, HTTP 401).

At most one rule fires per request: the first matching rule whose dice roll succeeds.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass

KINDS = ("error", "timeout", "rate_limit", "expired_token")
OPERATIONS = ("*", "transactions", "match", "columns", "read", "list", "dimensions", "statement", "token")


@dataclass
class FaultRule:
    id: str
    operation: str
    kind: str
    rate: float = 1.0
    count: int | None = None
    when: str = "before"
    status: int = 500
    delay_seconds: float = 30.0
    retry_after: int = 30
    client_id: str | None = None
    fired: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


class FaultInjector:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, **spec) -> FaultRule:
        if spec.get("kind") not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if spec.get("operation", "*") not in OPERATIONS:
            raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}")
        if spec.get("when", "before") not in ("before", "after"):
            raise ValueError("when must be before or after")
        if not 0.0 <= float(spec.get("rate", 1.0)) <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        rule = FaultRule(id=f"fault-{next(self._ids)}", **spec)
        self.rules.append(rule)
        return rule

    def pick(self, operation: str, client_id: str | None) -> FaultRule | None:
        for rule in self.rules:
            if rule.operation not in ("*", operation):
                continue
            if rule.operation == "*" and operation == "token":
                # "*" means every ProcessXml operation; token faults are asked for by name.
                continue
            if rule.client_id and rule.client_id != client_id:
                continue
            if rule.count is not None and rule.fired >= rule.count:
                continue
            if self.rng.random() < rule.rate:
                rule.fired += 1
                return rule
        return None

    def remove(self, rule_id: str) -> bool:
        before = len(self.rules)
        self.rules = [rule for rule in self.rules if rule.id != rule_id]
        return len(self.rules) < before

    def clear(self) -> None:
        self.rules.clear()
