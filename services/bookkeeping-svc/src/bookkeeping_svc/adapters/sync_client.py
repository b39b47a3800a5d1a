"""sync-svc's internal API, for Twikey's own record of what was paid and of its mandates (sync-svc
is the only service that talks to Twikey): ``GET /internal/v1/twikey/paid-items`` and
``GET /internal/v1/twikey/mandates`` with this service's ``internal`` service token and the
tenant in ``X-Koppel-Tenant``, page after page. Reads, so timeouts, 429 and 5xx are retried.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx

from koppel_shared.auth import TENANT_HEADER
from koppel_shared.http import RetryableResponse, make_client, send_with_retry

PAID_ITEMS = "/internal/v1/twikey/paid-items"
MANDATES = "/internal/v1/twikey/mandates"


class TwikeyRecordUnavailable(Exception):
    """sync-svc (or Twikey behind it) could not give Twikey's record; ``code`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class SyncClient:
    def __init__(self, base_url: str, token: str, timeout: float = 60.0) -> None:
        self._http = make_client(base_url.rstrip("/"), timeout=timeout)
        self._token = token

    async def close(self) -> None:
        await self._http.aclose()

    async def paid_pages(self, tenant_id: uuid.UUID, kind: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Twikey's paid items of one kind, from the start of its feed, a page at a time."""
        async for page in self._pages(tenant_id, PAID_ITEMS, {"kind": kind}):
            yield page

    async def mandate_pages(self, tenant_id: uuid.UUID) -> AsyncIterator[list[dict[str, Any]]]:
        """Twikey's mandate feed messages, from the start of its feed, a page at a time."""
        async for page in self._pages(tenant_id, MANDATES, {}):
            yield page

    async def _pages(
        self, tenant_id: uuid.UUID, path: str, query: dict[str, str]
    ) -> AsyncIterator[list[dict[str, Any]]]:
        after = 0
        while True:
            body = await self._page(tenant_id, path, {**query, "after": str(after)})
            yield list(body["items"])
            if body["done"]:
                return
            after = int(body["next_after"])

    async def _page(self, tenant_id: uuid.UUID, path: str, params: dict[str, str]) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._token}", TENANT_HEADER: str(tenant_id)}
        try:
            reply = await send_with_retry(
                lambda: self._http.get(path, params=params, headers=headers), attempts=4, max_wait=10.0
            )
        except (RetryableResponse, httpx.HTTPError) as exc:
            raise TwikeyRecordUnavailable("sync_unavailable", f"sync-svc did not answer: {exc}") from exc
        body = _json(reply)
        if reply.status_code != 200:
            code = str(body.get("code") or f"http_{reply.status_code}")
            raise TwikeyRecordUnavailable(code, str(body.get("detail") or reply.text[:300]))
        return body


def _json(reply: httpx.Response) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
