"""Calls to the services' REST APIs on behalf of the signed-in operator (their token is
forwarded, so each service applies its own tenant isolation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from koppel_shared.http import send_with_retry

# A service's 401 for the token itself: the operator's session is over (revoked on every service,
# or expired), so every page would fail until they sign in again. (`unknown_tenant` is not one:
# tenants are never removed, and a new one is unknown only for the moments its event takes.)
SESSION_OVER = frozenset({"token_revoked", "invalid_token"})


class SessionEnded(Exception):
    """A service refused the signed-in operator's token; ``code`` is its reason."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Answer:
    ok: bool
    status: int
    body: Any
    error: str | None = None

    @property
    def items(self) -> list[dict[str, Any]]:
        if isinstance(self.body, list):
            return self.body
        if isinstance(self.body, dict):
            for key in ("items", "data", "results", "events", "deliveries", "feeds", "webhooks"):
                if isinstance(self.body.get(key), list):
                    return list(self.body[key])
        return []

    def body_value(self, key: str) -> Any:
        return self.body.get(key) if self.ok and isinstance(self.body, dict) else None


class ServiceApi:
    def __init__(self, client: httpx.AsyncClient, base_urls: dict[str, str]) -> None:
        self._client = client
        self._base = base_urls

    async def call(self, service: str, method: str, path: str, token: str, **kwargs: Any) -> Answer:
        url = self._base[service].rstrip("/") + path
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            # Only reads are retried: a retried POST could act twice.
            if method == "GET":
                response = await send_with_retry(
                    lambda: self._client.request(method, url, headers=headers, **kwargs), attempts=2
                )
            else:
                response = await self._client.request(method, url, headers=headers, **kwargs)
        except (httpx.HTTPError, Exception) as exc:  # service down: the page says so
            return Answer(False, 503, None, f"{service}-svc is not reachable: {type(exc).__name__}")
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = response.text
        if response.is_success:
            return Answer(True, response.status_code, body)
        code = body.get("code") if isinstance(body, dict) else None
        if response.status_code == 401 and token and code in SESSION_OVER:
            raise SessionEnded(str(code))
        detail = body.get("detail") if isinstance(body, dict) else None
        return Answer(
            False, response.status_code, body, f"{service}-svc answered {response.status_code}: {detail or body}"
        )
