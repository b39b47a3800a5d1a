"""What the settings forms share: field errors (the console's own checks and the API's 422s, shown
beside the fields), and secrets shown once across a POST-redirect-GET.

A secret a service hands out only once (an ERP token, a webhook signing secret) and a connection
test's outcome must survive the redirect after the POST, but must never be put in a URL (URLs end up
in access logs). They ride in a short-lived cookie, signed and bound to the signed-in token so no
other session can plant one, and the next settings page reads it and deletes it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from koppel_console.services import Answer
from koppel_console.settings import Settings

ONCE_COOKIE = "koppel_console_once"
ONCE_PATH = "/console/settings"
ONCE_SECONDS = 300


@dataclass
class Errors:
    """Field name → message; ``general`` holds what belongs to no one field."""

    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def add(self, name: str, message: str) -> None:
        self.fields.setdefault(name, message)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def of(self, name: str) -> str | None:
        return self.fields.get(name)

    def take_answer(self, answer: Answer, rename: dict[str, str] | None = None) -> None:
        """A refused call: its field errors beside the fields, anything else on top."""
        body = answer.body if isinstance(answer.body, dict) else {}
        found = body.get("errors")
        listed: list[Any] = found if isinstance(found, list) else []
        for error in listed:
            name = str(error.get("field") or "body")
            name = (rename or {}).get(name, name)
            self.add(name, str(error.get("message") or error.get("rule") or "invalid"))
        if not listed:
            code = body.get("code")
            self.general.append(f"{answer.error}" + (f" ({code})" if code and code not in str(answer.error) else ""))


def unavailable(answer: Answer) -> bool:
    """The service has no such route (yet): the page says so instead of failing."""
    return answer.status in (404, 405) and (
        not isinstance(answer.body, dict) or answer.body.get("code") in (None, "not_found", "method_not_allowed")
    )


def euros_to_cents(value: str, name: str, errors: Errors) -> int | None:
    value = value.strip().replace(",", ".")
    if not value:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        errors.add(name, "an amount in euros, e.g. 5000 or 5000.00")
        return None
    if amount != amount.quantize(Decimal("0.01")) or amount <= 0:
        errors.add(name, "a positive amount in euros with at most two decimals")
        return None
    return int(amount * 100)


def whole_number(value: str, name: str, errors: Errors, low: int, high: int) -> int | None:
    value = value.strip()
    if not value.isdigit() or not low <= int(value) <= high:
        errors.add(name, f"a whole number from {low} to {high}")
        return None
    return int(value)


def _mac(settings: Settings, token: str, payload: bytes) -> str:
    key = settings.derived_key("console-once")
    return hmac.new(key, token.encode() + b"\0" + payload, hashlib.sha256).hexdigest()[:32]


def keep_once(response: Response, request: Request, token: str, value: dict[str, Any]) -> None:
    settings: Settings = request.app.state.settings
    payload = json.dumps(value, default=str).encode()
    cookie = base64.urlsafe_b64encode(payload).decode() + "." + _mac(settings, token, payload)
    response.set_cookie(
        ONCE_COOKIE, cookie, max_age=ONCE_SECONDS, httponly=True, samesite="strict", path=ONCE_PATH,
        secure=not settings.is_dev,
    )  # fmt: skip


def read_once(request: Request, token: str) -> dict[str, Any]:
    """What the last POST kept for this page (empty when nothing, or when it is not this session's)."""
    raw = request.cookies.get(ONCE_COOKIE, "")
    encoded, _, mac = raw.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded.encode())
    except ValueError:
        return {}
    if not raw or not hmac.compare_digest(_mac(request.app.state.settings, token, payload), mac):
        return {}
    value = json.loads(payload)
    return value if isinstance(value, dict) else {}


def forget_once(response: Response) -> None:
    response.delete_cookie(ONCE_COOKIE, path=ONCE_PATH)
