"""HTTP clients of Twinfield: OpenID Connect (code exchange, refresh, access-token validation)
and the ProcessXml SOAP service.

Retry policy, and why it differs for reads and writes:

- reads (``read``, ``list``, ``columns``) are retried on timeouts and 5xx through
  ``koppel_shared.http.send_with_retry``: repeating them is harmless;
- writes (``transactions``, ``match``, ``dimensions``) are **never** retried blindly: Twinfield
  has no idempotency key, and a timeout or 5xx may come after the write was applied. They raise
  ``OutcomeUnknown`` and the caller looks the result up before sending anything again. Only a
  connection that was never established is retried;
- 429 is raised as ``RateLimited`` with ``Retry-After`` for every call: the request was not
  processed, and the caller's credit meter decides when to go again;
- fault 354/103 (HTTP 401) is ``TokenRejected``: refresh once and repeat (nothing was applied).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from lxml import etree

from bookkeeping_svc.adapters.twinfield import documents
from bookkeeping_svc.adapters.twinfield.errors import (
    ConsentLost,
    Fault,
    OAuthFailed,
    OutcomeUnknown,
    RateLimited,
    TokenRejected,
    Unavailable,
)
from koppel_shared.http import RetryableResponse, retry_after_seconds, send_with_retry

AUTH_BASE = "/auth/authentication/connect"
PROCESSXML = "/webservices/processxml.asmx"
WRITE_ROOTS = {"transactions", "transaction", "match", "dimensions", "dimension"}


async def _login_call(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """Calls to the login service: retried, and if it stays down an ``Unavailable`` (nothing
    changed), never a bare transport error."""
    try:
        return await send_with_retry(send, attempts=4)
    except (httpx.HTTPError, RetryableResponse) as exc:
        raise Unavailable(f"Twinfield's login service is unavailable: {type(exc).__name__}") from exc


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    expires_in: int
    refresh_token: str | None


@dataclass(frozen=True)
class TokenInfo:
    cluster_url: str
    organisation: str | None
    expires_at: float | None


class OAuthClient:
    def __init__(self, http: httpx.AsyncClient, login_url: str, client_id: str, client_secret: str) -> None:
        self.http = http
        self.login_url = login_url.rstrip("/")
        self.client_id = client_id
        self._basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()

    def authorize_url(self, redirect_uri: str, scope: str, state: str, nonce: str) -> str:
        query = urlencode(
            {
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": scope,
                "state": state,
                "nonce": nonce,
            }
        )
        return f"{self.login_url}{AUTH_BASE}/authorize?{query}"

    async def _token(self, form: dict[str, str]) -> TokenSet:
        url = f"{self.login_url}{AUTH_BASE}/token"
        reply = await _login_call(
            lambda: self.http.post(
                url,
                data=form,
                headers={"Authorization": f"Basic {self._basic}", "Accept": "application/json"},
            )
        )
        body = _json(reply)
        if reply.status_code >= 400:
            error = str(body.get("error", f"http_{reply.status_code}"))
            detail = str(body.get("error_description", ""))
            if error == "invalid_grant":
                raise ConsentLost(f"{error}: {detail}")
            raise OAuthFailed(f"{error}: {detail}")
        return TokenSet(
            access_token=str(body["access_token"]),
            expires_in=int(body.get("expires_in", 3600)),
            refresh_token=body.get("refresh_token"),
        )

    async def exchange_code(self, code: str, redirect_uri: str) -> TokenSet:
        return await self._token({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri})

    async def refresh(self, refresh_token: str) -> TokenSet:
        return await self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    async def validate(self, access_token: str) -> TokenInfo:
        """Access-token validation: the claims give the cluster URL to send ProcessXml to."""
        url = f"{self.login_url}{AUTH_BASE}/accesstokenvalidation"
        reply = await _login_call(lambda: self.http.get(url, params={"token": access_token}))
        if reply.status_code >= 400:
            raise TokenRejected(f"access token validation failed (HTTP {reply.status_code})")
        claims = _json(reply)
        cluster = str(claims.get("twf.clusterUrl") or "").rstrip("/")
        if not cluster:
            raise OAuthFailed("access token validation gave no twf.clusterUrl")
        exp = claims.get("exp")
        return TokenInfo(
            cluster_url=cluster,
            organisation=claims.get("twf.organisationCode"),
            expires_at=float(exp) if exp is not None else None,
        )


def _json(reply: httpx.Response) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class ProcessXml:
    """One ProcessXmlString call per method call; see the module docstring for retries."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def call(self, cluster_url: str, access_token: str, office: str | None, request_xml: str) -> etree._Element:
        root_tag = etree.fromstring(request_xml.encode()).tag
        url = cluster_url.rstrip("/") + PROCESSXML
        body = documents.envelope(access_token, office, request_xml)

        def send() -> Any:
            return self.http.post(
                url,
                content=body,
                headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": documents.SOAP_ACTION},
            )

        if root_tag in WRITE_ROOTS:
            reply = await self._send_write(send)
        else:
            reply = await self._send_read(send)
        return self._interpret(reply, write=root_tag in WRITE_ROOTS)

    async def _send_read(self, send: Any) -> httpx.Response:
        try:
            return await send_with_retry(send, attempts=4, should_retry=lambda r: r.status_code in (500, 502, 503, 504))
        except RetryableResponse as exc:
            raise Unavailable(str(exc)) from exc
        except httpx.HTTPError as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _send_write(self, send: Any) -> httpx.Response:
        for attempt in range(3):
            try:
                return await send()
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Never connected: nothing reached Twinfield, so sending again is safe.
                if attempt == 2:
                    raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
                await asyncio.sleep(0.5 * (attempt + 1))
            except httpx.HTTPError as exc:
                raise OutcomeUnknown(f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _interpret(self, reply: httpx.Response, write: bool) -> etree._Element:
        if reply.status_code == 429:
            raise RateLimited(retry_after_seconds(reply) or 1.0)
        content = reply.content
        parsed: etree._Element | Fault | None = None
        if content.lstrip().startswith(b"<"):
            try:
                parsed = documents.parse_envelope(content)
            except (ValueError, etree.XMLSyntaxError):
                parsed = None
        if isinstance(parsed, Fault):
            if parsed.code in ("354", "103") or reply.status_code == 401:
                raise TokenRejected(parsed.message)
            if reply.status_code >= 500 and write:
                raise OutcomeUnknown(f"HTTP {reply.status_code}, fault {parsed.code}: {parsed.message}")
            if reply.status_code >= 500:
                raise Unavailable(f"HTTP {reply.status_code}, fault {parsed.code}: {parsed.message}")
            raise parsed
        if parsed is None or reply.status_code >= 400:
            text = f"HTTP {reply.status_code}: {reply.text[:200]}"
            if write and reply.status_code >= 500:
                raise OutcomeUnknown(text)
            raise Unavailable(text)
        return parsed


def cost_of(request_xml: str) -> int:
    tag = etree.fromstring(request_xml.encode()).tag
    return 1 if tag in ("list", "read", "columns", "accountcode", "accountcodes") else 3
