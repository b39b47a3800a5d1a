"""Twikey's webhook signature: uppercase hex HMAC-SHA256 of the query string, keyed with the
tenant's API key (reference §9.2).

Which form of the query string Twikey signs is not published. Twikey's own receivers (Python and
PHP SDKs, the Odoo module, the C#/JS/PHP/Python samples) hash the URL-decoded query; the Java SDK
and the Java sample hash the raw one; Go and Node hash whatever their caller passes. The forms
only differ when a value needs escaping, and decoders differ on ``+`` (PHP/C# read a space,
Python/Odoo/JS keep the plus). So a webhook is accepted when the signature matches any of the
three: raw, percent-decoded, and percent-and-plus-decoded. All of them are computed over bytes
(UTF-8 escapes decode to the bytes Twikey hashed) and every candidate is compared in constant
time, so the answer's timing does not tell which form matched.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import unquote_to_bytes


def sign(api_key: str, message: str | bytes) -> str:
    data = message.encode() if isinstance(message, str) else message
    # hmac.digest: OpenSSL's one-shot HMAC, several times cheaper than building an hmac object
    return hmac.digest(api_key.encode(), data, hashlib.sha256).hex().upper()


def signed_forms(raw_query: bytes) -> list[bytes]:
    """The distinct forms of a query string a Twikey receiver may have hashed."""
    forms = [raw_query, unquote_to_bytes(raw_query), unquote_to_bytes(raw_query.replace(b"+", b" "))]
    return list(dict.fromkeys(forms))


def verify(api_key: str, raw_query: str | bytes, signature: str | None) -> bool:
    """``raw_query`` as it came on the wire (bytes, or a str that holds only those bytes as latin-1)."""
    if not signature:
        return False
    given = signature.strip().upper().encode("ascii", "replace")
    raw = raw_query if isinstance(raw_query, bytes) else _wire_bytes(raw_query)
    matches = [hmac.compare_digest(sign(api_key, form).encode(), given) for form in signed_forms(raw)]
    return any(matches)


def _wire_bytes(query: str) -> bytes:
    try:
        return query.encode("latin-1")  # how the entrypoint turned the wire bytes into text
    except UnicodeEncodeError:
        return query.encode()  # text written by hand, e.g. in a test
