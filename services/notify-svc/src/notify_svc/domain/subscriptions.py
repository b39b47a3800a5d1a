"""Which event types an endpoint is subscribed to: exact types (``collection.paid``), a family
(``mandate.*``) or everything public (``*``). Types not known today match a family pattern, so an
ERP subscribed to ``mandate.*`` receives a future ``mandate.renewed`` without changing anything."""

from __future__ import annotations

import re
from collections.abc import Iterable

PUBLIC_PREFIXES = ("mandate", "collection", "booking")
_PATTERN = re.compile(r"^(\*|(" + "|".join(PUBLIC_PREFIXES) + r")\.(\*|[a-z][a-z0-9_]*))$")
MAX_PATTERNS = 50


def is_public_type(event_type: str) -> bool:
    prefix, dot, rest = event_type.partition(".")
    return bool(dot and rest) and prefix in PUBLIC_PREFIXES


def pattern_error(pattern: str) -> str | None:
    if _PATTERN.match(pattern):
        return None
    return (
        f"{pattern!r} is not an event type pattern: use '*', '<family>.*' or an exact type, "
        f"with family one of {', '.join(PUBLIC_PREFIXES)}"
    )


def normalise(patterns: Iterable[str]) -> list[str]:
    """Patterns without duplicates, in the order given (validated by the caller)."""
    seen: list[str] = []
    for p in patterns:
        p = p.strip()
        if p not in seen:
            seen.append(p)
    return seen


def matches(pattern: str, event_type: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def subscribed(patterns: Iterable[str], event_type: str) -> bool:
    return any(matches(p, event_type) for p in patterns)
