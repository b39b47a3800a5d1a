"""Webhook secrets and signatures, the way the Standard Webhooks specification defines them.

A secret is ``whsec_`` + base64 of random bytes; the HMAC key is the decoded bytes. The signed
content is ``"{webhook-id}.{webhook-timestamp}.{body}"`` and the ``webhook-signature`` header is a
space-separated list of ``v1,<base64 HMAC-SHA256>`` — one per secret that is valid right now, so an
ERP can switch to a rotated secret while the old one is still honoured.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


class InvalidSecret(ValueError):
    pass


def format_secret(raw: bytes) -> str:
    return SECRET_PREFIX + base64.b64encode(raw).decode()


def secret_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("a webhook secret starts with whsec_")
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except ValueError as exc:
        raise InvalidSecret("a webhook secret is whsec_ followed by base64") from exc


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<signature>`` entry."""
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets: Iterable[str], message_id: str, timestamp: int, body: bytes) -> str:
    return " ".join(sign(s, message_id, timestamp, body) for s in secrets)


def webhook_headers(secrets: Iterable[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, message_id, timestamp, body),
    }
