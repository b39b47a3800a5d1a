"""Twikey's webhook signature: uppercase hex HMAC-SHA256 of the query string, keyed with the
tenant's API key (reference §9.2).

Twikey's own Python/PHP code verifies the URL-decoded query string while the Go/Java/.NET SDKs hash
the raw one; the sandbox signs the decoded form. We accept either, always comparing in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import unquote


def sign(api_key: str, message: str) -> str:
    # hmac.digest: OpenSSL's one-shot HMAC, several times cheaper than building an hmac object
    return hmac.digest(api_key.encode(), message.encode(), hashlib.sha256).hex().upper()


def verify(api_key: str, raw_query: str, signature: str | None) -> bool:
    if not signature:
        return False
    given = signature.strip().upper()
    decoded = unquote(raw_query)
    if hmac.compare_digest(sign(api_key, decoded), given):
        return True
    return decoded != raw_query and hmac.compare_digest(sign(api_key, raw_query), given)
