"""Fault injection: rules that make matching `/creditor` calls fail, stall or lose their webhooks.

A rule matches on method and a glob over the request path ("transaction" is short for
"/creditor/transaction"). Each matching call triggers the rule with probability `rate`, at most
`count` times. Kinds:

- `error`         answer `status` (default 500) without touching state, or, with `after_write`,
                  after the handler ran (the write is applied, its answer is lost);
- `latency` / `timeout`  sleep `delay_seconds` before the handler, or after it when `after_write`
                  is true (the write is applied, the client times out and must not apply it twice);
- `rate_limit`    429 with `X-Rate-Limit-Retry-After-Seconds`;
- `expired_token` 401 `err_no_login`, and the presented session token is really invalidated;
- `drop_webhook`  the webhook is recorded as dropped and not sent; the pattern matches the
                  webhook's query string (e.g. `*type=payment*`).

The control API (`/_sandbox/...`) is never subject to faults.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import asdict, dataclass
from fnmatch import fnmatchcase
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from .errors import error_response, no_login, rate_limited_response

KINDS = ("error", "latency", "timeout", "rate_limit", "expired_token", "drop_webhook")


@dataclass(slots=True)
class FaultRule:
    id: int
    kind: str
    path: str = "*"
    method: str = "*"
    rate: float = 1.0
    count: int | None = None  # remaining triggers; None = unlimited
    status: int = 500
    delay_seconds: float = 20.0
    after_write: bool = False
    retry_after: int = 30
    hits: int = 0  # how many times it fired
    seen: int = 0  # how many calls matched

    def public(self) -> dict[str, Any]:
        return asdict(self)


def _normalise(path: str) -> str:
    if path in ("", "*") or path.startswith(("/", "*")):
        return path or "*"
    return "/creditor/" + path


class FaultRegistry:
    def __init__(self, seed: int | None = None) -> None:
        self.rules: list[FaultRule] = []
        self.rng = random.Random(seed)
        self._ids = itertools.count(1)

    def add(self, kind: str, seed: int | None = None, **options: Any) -> FaultRule:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(KINDS)}")
        if seed is not None:
            self.rng.seed(seed)
        rate = float(options.get("rate", 1.0))
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        options["rate"] = rate
        if kind != "drop_webhook":
            options["path"] = _normalise(options.get("path", "*"))
        options["method"] = str(options.get("method", "*")).upper()
        rule = FaultRule(id=next(self._ids), kind=kind, **options)
        self.rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        before = len(self.rules)
        self.rules = [r for r in self.rules if r.id != rule_id]
        return len(self.rules) != before

    def clear(self) -> None:
        self.rules.clear()

    def _fire(self, rule: FaultRule) -> bool:
        rule.seen += 1
        if rule.count is not None and rule.count <= 0:
            return False
        if rule.rate < 1.0 and self.rng.random() >= rule.rate:
            return False
        rule.hits += 1
        if rule.count is not None:
            rule.count -= 1
        return True

    def match(self, method: str, path: str) -> FaultRule | None:
        for rule in self.rules:
            if rule.kind == "drop_webhook":
                continue
            if rule.method not in ("*", method.upper()):
                continue
            if fnmatchcase(path, rule.path) and self._fire(rule):
                return rule
        return None

    def should_drop_webhook(self, query: str) -> bool:
        for rule in self.rules:
            if rule.kind == "drop_webhook" and fnmatchcase(query, rule.path) and self._fire(rule):
                return True
        return False


async def fault_middleware(request: Request, call_next: Any) -> Response:
    path = request.url.path
    if not path.startswith("/creditor"):
        return await call_next(request)
    registry: FaultRegistry = request.app.state.faults
    rule = registry.match(request.method, path)
    if rule is None:
        return await call_next(request)
    if rule.kind == "error":
        if rule.after_write:
            await call_next(request)  # the write is applied, then its answer is lost in a 5xx
        if rule.status >= 500:
            return PlainTextResponse("Internal Server Error (sandbox fault)", status_code=rule.status)
        return JSONResponse({"message": "sandbox fault"}, status_code=rule.status)
    if rule.kind == "rate_limit":
        return rate_limited_response(rule.retry_after)
    if rule.kind == "expired_token":
        token = request.headers.get("authorization")
        if token:
            request.app.state.sandbox.sessions.pop(token, None)
        return error_response(no_login())
    # latency / timeout
    if rule.after_write:
        response = await call_next(request)
        await asyncio.sleep(rule.delay_seconds)
        return response
    await asyncio.sleep(rule.delay_seconds)
    return await call_next(request)
