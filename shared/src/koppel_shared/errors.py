"""Application errors: what a use case says when it refuses, in words of meaning, not of HTTP.

Use cases (``service_layer/``) raise these; they know nothing of status codes, so a broker
handler can call the same use case and catch the same error. The web edge turns each kind into
``application/problem+json`` with one exception handler (``koppel_shared.web.errors``), whose
table of kinds to statuses is the only place a status is chosen.

Every error carries a stable machine-readable ``code``, a human ``detail`` and optional ``extra``
members that the problem body carries beside them (``invoice_id=...``, ``errors=[...]``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class AppError(Exception):
    """A refusal with a stable ``code``. Raise one of the kinds below, not this class itself."""

    def __init__(self, code: str, detail: str, *, title: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.title = title
        self.extra = extra

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.detail!r})"


class Malformed(AppError):
    """The request cannot be read at all: a cursor we never issued, a forged state, a webhook
    without its parameters."""


class TooLong(AppError):
    """The request's address carries more than we accept (a webhook's query string)."""


class Unauthenticated(AppError):
    """The caller could not prove who it is (a missing or wrong signature)."""


class Forbidden(AppError):
    """The caller is known but may not do this."""


class NotFound(AppError):
    """No such thing for this tenant (another tenant's thing is indistinguishable from none)."""


class Conflict(AppError):
    """The request is understood but clashes with the current state; nothing was changed."""


class Invalid(AppError):
    """The input breaks a rule. ``errors`` names each offending field and the rule it broke."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        title: str | None = None,
        errors: Iterable[Mapping[str, Any]] | None = None,
        **extra: Any,
    ) -> None:
        if errors is not None:
            extra["errors"] = [dict(e) for e in errors]
        super().__init__(code, detail, title=title, **extra)

    @classmethod
    def fields(cls, errors: Iterable[Mapping[str, Any]]) -> Invalid:
        """The same shape as a request that failed schema validation: code ``validation_error``,
        one ``{field, rule, message}`` per broken rule, the detail listing them all."""
        listed = [dict(e) for e in errors]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in listed)
        return cls("validation_error", detail, title="Invalid request", errors=listed)


class UpstreamFailed(AppError):
    """A system we depend on (Twikey, Twinfield) answered, but refused or said something unusable."""


class Unavailable(AppError):
    """A system we depend on could not be reached; the same request may work later."""


__all__ = [
    "AppError",
    "Conflict",
    "Forbidden",
    "Invalid",
    "Malformed",
    "NotFound",
    "TooLong",
    "Unauthenticated",
    "Unavailable",
    "UpstreamFailed",
]
