"""Outgoing webhooks: Twikey's `GET <url>?<query>` with `X-Signature`, sent in the background.

The signature is uppercase hex HMAC-SHA256 keyed with the creditor's API key over the *decoded*
query string (what Twikey's own receivers verify: the Python and PHP SDKs, the Odoo module, most
samples). Values are escaped as little as a query string allows — only space (as `%20`, never
`+`), `&`, `=`, `+`, `#`, `%`, control and non-ASCII characters (UTF-8) — so the raw and decoded
forms, and with them all official SDKs, agree on every value made of letters, digits and the
other SEPA characters (`/ - ? : ( ) . , '`).
Every attempt (sent, failed, dropped by a fault, skipped for lack of a URL) is recorded so
tests can read it back through the control API.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

import httpx

from .render import iso

if TYPE_CHECKING:
    from .faults import FaultRegistry
    from .state import Creditor, SandboxState

WEBHOOK_TIMEOUT_SECONDS = 5.0
MAX_RECORDED_ATTEMPTS = 10_000


# Characters a query value may carry unescaped (RFC 3986 pchar) that no query parser reads as
# syntax; `&`, `=`, `+` and `;` are left out on purpose.
QUERY_SAFE = "/?:@!$'()*,"


def encode_query(params: dict[str, str]) -> str:
    return urlencode(params, safe=QUERY_SAFE, quote_via=quote)


def sign(api_key: str, query: str) -> str:
    return hmac.new(api_key.encode(), query.encode(), hashlib.sha256).hexdigest().upper()


class WebhookDispatcher:
    def __init__(self, state: SandboxState, faults: FaultRegistry) -> None:
        self.state = state
        self.faults = faults
        self.attempts: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self.enabled = True  # seeding turns this off so 100k mandates do not mean 100k GETs

    def emit(self, creditor: Creditor, params: dict[str, str]) -> dict[str, Any] | None:
        """Queue one webhook; returns the recorded attempt (None while disabled)."""
        if not self.enabled:
            return None
        query = encode_query(params)
        attempt: dict[str, Any] = {
            "id": next(self._ids),
            "api_key": creditor.api_key,
            "params": dict(params),
            "query": query,
            "url": None,
            "signature": None,
            "status": "pending",
            "status_code": None,
            "error": None,
            "created_at": iso(self.state.clock.now()),
        }
        self.attempts.append(attempt)
        if len(self.attempts) > MAX_RECORDED_ATTEMPTS:
            del self.attempts[: len(self.attempts) - MAX_RECORDED_ATTEMPTS]
        if not creditor.webhook_url:
            attempt["status"] = "no_url"
            return attempt
        base = creditor.webhook_url
        full_query = f"{base.split('?', 1)[1]}&{query}" if "?" in base else query
        attempt["url"] = f"{base.split('?', 1)[0]}?{full_query}"
        attempt["signature"] = sign(creditor.api_key, unquote(full_query))
        if self.faults.should_drop_webhook(query):
            attempt["status"] = "dropped"
            return attempt
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            attempt["status"] = "not_sent"
            attempt["error"] = "no running event loop"
            return attempt
        task = loop.create_task(self._send(attempt))
        # Keep a strong reference: the loop only holds weak ones and would let it be collected.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return attempt

    async def _send(self, attempt: dict[str, Any]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_SECONDS)
        try:
            response = await self._client.get(
                attempt["url"],
                headers={"X-Signature": attempt["signature"], "User-Agent": "Twikey-Sandbox-Webhook/1.0"},
            )
            attempt["status_code"] = response.status_code
            attempt["status"] = "delivered" if 200 <= response.status_code < 300 else "failed"
        except httpx.HTTPError as exc:
            attempt["status"] = "failed"
            attempt["error"] = f"{type(exc).__name__}: {exc}"
        attempt["finished_at"] = iso(self.state.clock.now())

    async def drain(self) -> None:
        """Wait for webhooks in flight (used on shutdown and by the control API)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ---- the events Twikey sends --------------------------------------------------------------
    def contract(self, creditor: Creditor, mndt_id: str, event: str, state: str, reason: str = "") -> None:
        params = {"type": "contract", "mandateNumber": mndt_id, "event": event, "state": state}
        if reason:
            params["reason"] = reason
        self.emit(creditor, params)

    def payment(self, creditor: Creditor) -> None:
        self.emit(creditor, {"type": "payment"})

    def paylink(self, creditor: Creditor, link_id: int, ref: str | None) -> None:
        params = {"type": "payment", "id": str(link_id)}
        if ref:
            params["ref"] = ref
        self.emit(creditor, params)
