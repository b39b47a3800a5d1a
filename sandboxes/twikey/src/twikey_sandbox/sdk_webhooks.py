"""How each of Twikey's official SDKs verifies a webhook, re-implemented from reading their source,
so tests can check a webhook (the sandbox's, or one Koppel receives) against every one of them.

Each function takes what a receiver built on that SDK has in hand — the query string as it came
on the wire (bytes) and the ``X-Signature`` header — and does what the SDK and its documented
usage do with it (reference §9.2):

- Go (``Client.VerifyWebhook``): HMAC over the payload it is given, uppercase hex, compared with
  ``==`` (so a lowercase header fails). Its README and test pass the query string as is.
- Node (``TwikeyClient.verifyWebHookSignature``): lowercase hex, the header lower-cased, compared
  with ``timingSafeEqual`` (which throws on a length mismatch). Its test passes the query as is.
- Java (``TwikeyClient.verifyWebHookSignature``): the header hex-decoded and compared byte by byte
  with the HMAC of ``request.getQueryString()`` — the raw, undecoded query.
- PHP (``Twikey::validateWebhook``): HMAC over ``urldecode($_SERVER['QUERY_STRING'])`` (``+`` is
  a space), uppercase, ``hash_equals``.
- Python (``Webhook.verify_signature`` with the README's ``urllib.parse.unquote(query_string)``,
  which keeps ``+``): uppercase, ``compare_digest``.

``decoded=True`` feeds the Go and Node functions the percent-decoded query instead, for a
receiver that decodes before calling them (neither SDK says which form to pass).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from urllib.parse import unquote, unquote_to_bytes


def _hmac(api_key: str, payload: bytes) -> bytes:
    return hmac.new(api_key.encode(), payload, hashlib.sha256).digest()


def go(api_key: str, raw_query: bytes, header: str, decoded: bool = False) -> bool:
    payload = unquote_to_bytes(raw_query) if decoded else raw_query
    return header == _hmac(api_key, payload).hex().upper()


def node(api_key: str, raw_query: bytes, header: str, decoded: bool = False) -> bool:
    payload = unquote_to_bytes(raw_query) if decoded else raw_query
    given, expected = header.lower().encode(), _hmac(api_key, payload).hex().encode()
    if len(given) != len(expected):  # timingSafeEqual throws a RangeError
        return False
    return hmac.compare_digest(given, expected)


def java(api_key: str, raw_query: bytes, header: str) -> bool:
    try:
        provided = bytes.fromhex(header)
    except ValueError:
        return False
    calculated = _hmac(api_key, raw_query.decode("latin-1").encode())  # getQueryString().getBytes(UTF_8)
    if len(provided) < len(calculated):  # ArrayIndexOutOfBoundsException
        return False
    return all(p == c for p, c in zip(provided, calculated, strict=False))


def php(api_key: str, raw_query: bytes, header: str) -> bool:
    message = unquote_to_bytes(raw_query.replace(b"+", b" "))  # urldecode()
    return hmac.compare_digest(_hmac(api_key, message).hex().upper().encode(), header.encode())


def python(api_key: str, raw_query: bytes, header: str) -> bool:
    payload = unquote(raw_query)  # Flask's query_string is bytes: decoded as UTF-8, errors replaced
    expected = _hmac(api_key, payload.encode()).hex().upper()
    return hmac.compare_digest(header.encode(), expected.encode())


VERIFIERS: dict[str, Callable[[str, bytes, str], bool]] = {
    "go": go,
    "node": node,
    "java": java,
    "php": php,
    "python": python,
}


def verdicts(api_key: str, raw_query: bytes, header: str) -> dict[str, bool]:
    """Each SDK's answer for one webhook, by SDK name."""
    return {name: verify(api_key, raw_query, header) for name, verify in VERIFIERS.items()}
