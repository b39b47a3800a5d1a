"""Client of Twikey's REST API in its real wire format (docs/reference/twikey-api.md §0-§9): form bodies, the raw
session token in ``Authorization`` (no "Bearer"), errors in ``ApiErrorCode``/``ApiError`` headers
with a JSON ``{code, message, extra}`` body.

- every call has a timeout. **Reads** (GET, feeds, detail calls, and the login, which changes
  nothing) retry timeouts, 5xx and 429 (honouring ``X-Rate-Limit-Retry-After-Seconds``) through
  ``koppel_shared.http``; when retries run out the caller gets ``TwikeyUnavailable``;
- **writes** (POST/PUT/PATCH/DELETE) are sent again only when Twikey certainly did not act on
  them: the connection was never made, or a 429 said to come back later. A timeout, a broken
  connection or a 5xx after the request left may come after Twikey applied it: the caller gets
  ``TwikeyOutcomeUnknown`` and resolves it by a look-up on a reference it chose, never by
  sending the write again;
- the session token is cached per tenant/key and renewed before 24 h, and once more on 401 or
  ``err_no_login`` (expired or invalidated token);
- a Twikey error is a ``TwikeyError(code, message)``, never a bare HTTP error.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from koppel_shared.http import RetryableResponse, retry_after_seconds, send_with_retry
from koppel_shared.logging import get_logger
from sync_svc.domain.otp import otp

log = get_logger(__name__)

USER_AGENT = "koppel-sync/0.1 (+https://koppel.dev)"
FEED_PATHS = {"mandate": "/mandate", "transaction": "/transaction", "paylink": "/payment/link/feed"}
FEED_KEYS = {"mandate": "Messages", "transaction": "Entries", "paylink": "Links"}
FEED_PARAMS: dict[str, list[tuple[str, str]]] = {
    "mandate": [("include", "id"), ("include", "mandate"), ("include", "person"), ("include", "cancelled_mandate")],
    # seq gives every entry an identity; action lets us see reversals the sandbox marks.
    "transaction": [("include", "seq"), ("include", "collection"), ("include", "lastupdate"), ("include", "action")],
    # all=true: every state change, not only payments.
    "paylink": [("all", "true"), ("include", "meta"), ("include", "time")],
}


class TwikeyError(Exception):
    """Twikey refused the call: ``code`` is its ApiErrorCode (e.g. ``err_no_contract``)."""

    def __init__(self, code: str, message: str, status: int = 400, extra: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra


class TwikeyUnavailable(Exception):
    """Twikey could not be reached or kept failing (timeouts, 5xx, 429) after the retries."""


class TwikeyOutcomeUnknown(TwikeyUnavailable):
    """A write got no usable answer after it was sent: Twikey may have applied it.

    ``answered`` is true when Twikey itself answered 500/503 (it finished with the request, so a
    look-up that finds nothing means nothing was made); false after a timeout, a broken
    connection or a gateway's 502/504 (the request may still be under way at Twikey)."""

    def __init__(self, message: str, answered: bool) -> None:
        super().__init__(message)
        self.answered = answered


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Raised before a byte of the request left: sending again cannot act twice.
NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class Credentials:
    tenant_id: str
    base_url: str
    api_key: str
    private_key: str | None = None

    @property
    def session_key(self) -> str:
        # A new API key or base URL must never reuse the old key's session.
        digest = hashlib.sha256(f"{self.base_url}|{self.api_key}".encode()).hexdigest()[:16]
        return f"{self.tenant_id}:{digest}"


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    initial: float = 0.2
    max_wait: float = 30.0


@dataclass
class SessionCache:
    """Session tokens per tenant/key, shared by every client of the process."""

    max_age: float = 23 * 3600
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        found = self._tokens.get(key)
        if found is None or time.monotonic() - found[1] > self.max_age:
            return None
        return found[0]

    def put(self, key: str, token: str) -> None:
        self._tokens[key] = (token, time.monotonic())

    def forget(self, key: str, token: str | None = None) -> None:
        found = self._tokens.get(key)
        if found is not None and (token is None or found[0] == token):
            del self._tokens[key]

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())


@dataclass(frozen=True)
class LoginResult:
    token: str
    merchant_id: str | None


@dataclass(frozen=True)
class MandateDetail:
    mandate_number: str
    state: str | None  # X-STATE, e.g. PREPARED, SIGNED


@dataclass(frozen=True)
class FeedPage:
    items: list[dict[str, Any]]
    last: int | None  # X-LAST, when Twikey sent it


def _error_from(response: httpx.Response) -> TwikeyError:
    code = response.headers.get("ApiErrorCode") or response.headers.get("ApiError")
    message, extra = response.reason_phrase or "error", None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = code or body.get("code")
        message = str(body.get("message") or message)
        extra = body.get("extra")
    if not code:
        code = "err_no_login" if response.status_code == 401 else f"http_{response.status_code}"
    return TwikeyError(str(code), message, response.status_code, None if extra is None else str(extra))


def _is_error(response: httpx.Response) -> bool:
    return response.status_code >= 400 or "ApiErrorCode" in response.headers or "ApiError" in response.headers


class TwikeyClient:
    """Twikey for one tenant. Cheap to build: the HTTP client and sessions are shared."""

    def __init__(
        self, http: httpx.AsyncClient, credentials: Credentials, sessions: SessionCache, retry: RetryPolicy
    ) -> None:
        self._http = http
        self.credentials = credentials
        self._sessions = sessions
        self._retry = retry
        self._base = credentials.base_url.rstrip("/")

    # ---- plumbing --------------------------------------------------------------------------
    async def _send(self, method: str, path: str, *, write: bool = False, **kwargs: Any) -> httpx.Response:
        if write:
            return await self._send_write(method, path, **kwargs)
        url = self._base + path
        try:
            return await send_with_retry(
                lambda: self._http.request(method, url, **kwargs),
                attempts=self._retry.attempts,
                initial=self._retry.initial,
                max_wait=self._retry.max_wait,
            )
        except RetryableResponse as exc:
            raise TwikeyUnavailable(f"{method} {path}: HTTP {exc.response.status_code} after retries") from exc
        except httpx.HTTPError as exc:
            raise TwikeyUnavailable(f"{method} {path}: {type(exc).__name__} after retries") from exc

    async def _send_write(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One write, sent again only when Twikey certainly did not act on it (see the module)."""
        url, policy = self._base + path, self._retry
        for attempt in range(1, policy.attempts + 1):
            last = attempt == policy.attempts
            try:
                response = await self._http.request(method, url, **kwargs)
            except NEVER_SENT as exc:
                if last:
                    raise TwikeyUnavailable(f"{method} {path}: {type(exc).__name__} after retries") from exc
                await asyncio.sleep(min(policy.initial * 2 ** (attempt - 1), policy.max_wait))
                continue
            except httpx.HTTPError as exc:
                raise TwikeyOutcomeUnknown(f"{method} {path}: {type(exc).__name__} after sending", False) from exc
            if response.status_code == 429:
                # Refused before processing: Twikey says when to come back.
                if last:
                    raise TwikeyUnavailable(f"{method} {path}: HTTP 429 after retries")
                wait = retry_after_seconds(response)
                await asyncio.sleep(min(wait if wait is not None else policy.initial, policy.max_wait))
                continue
            if response.status_code >= 500:
                raise TwikeyOutcomeUnknown(
                    f"{method} {path}: HTTP {response.status_code} after sending", response.status_code in (500, 503)
                )
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def login(self) -> LoginResult:
        """``POST {base}`` with the API key (and OTP): the token comes in the ``Authorization``
        header and the body, the merchant id in ``X-MERCHANT-ID``."""
        form = {"apiToken": self.credentials.api_key}
        if self.credentials.private_key:
            form["otp"] = str(otp(self.credentials.private_key, time.time()))
        response = await self._send("POST", "", data=form, headers=self._headers())
        if _is_error(response):
            raise _error_from(response)
        token = response.headers.get("Authorization")
        if not token:
            try:
                token = response.json().get("Authorization")
            except ValueError:
                token = None
        if not token:
            raise TwikeyError("err_no_login", "login answered without a session token", response.status_code)
        return LoginResult(token=token, merchant_id=response.headers.get("X-MERCHANT-ID"))

    async def _token(self) -> str:
        key = self.credentials.session_key
        token = self._sessions.get(key)
        if token:
            return token
        async with self._sessions.lock(key):  # one login per tenant, not one per concurrent call
            token = self._sessions.get(key)
            if token:
                return token
            result = await self.login()
            self._sessions.put(key, result.token)
            return result.token

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": USER_AGENT, **(extra or {})}

    async def call(
        self,
        method: str,
        path: str,
        *,
        data: dict[str, str] | None = None,
        params: Sequence[tuple[str, str]] | dict[str, str] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """An authenticated call; a Twikey error raises ``TwikeyError``. The method decides the
        retry policy (reads vs writes, see the module)."""
        for attempt in (1, 2):
            token = await self._token()
            response = await self._send(
                method,
                path,
                write=method.upper() in WRITE_METHODS,
                data=data,
                params=params,
                json=json,
                headers=self._headers({"Authorization": token, **(headers or {})}),
            )
            if not _is_error(response):
                return response
            error = _error_from(response)
            if response.status_code == 401 or error.code == "err_no_login":
                # Expired or invalidated session: forget it and log in again, once (a refused
                # session means nothing was applied, so a write may go again too).
                self._sessions.forget(self.credentials.session_key, token)
                if attempt == 1:
                    log.info("twikey.session_renewed", tenant_id=self.credentials.tenant_id)
                    continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- mandates --------------------------------------------------------------------------
    async def invite(self, form: dict[str, str]) -> dict[str, Any]:
        """``POST /invite`` → ``{url, key, mndtId}``."""
        return dict((await self.call("POST", "/invite", data=form)).json())

    async def cancel_mandate(self, mandate_number: str, reason: str) -> None:
        await self.call("DELETE", "/mandate", params={"mndtId": mandate_number, "rsn": reason})

    async def set_mandate_state(self, mandate_number: str, state: str) -> None:
        """``state=passive`` suspends, ``state=active`` resumes (reference §2.5)."""
        await self.call("POST", "/mandate/update", data={"mndtId": mandate_number, "state": state})

    async def remind(self, mandate_number: str) -> None:
        await self.call("POST", f"/mandate/{mandate_number}/action", data={"type": "reminder"})

    async def mandate_state(self, mandate_number: str) -> str | None:
        response = await self.call("GET", "/mandate/detail", params={"mndtId": mandate_number, "force": "true"})
        return response.headers.get("X-STATE")

    async def mandate_detail(self, mandate_number: str) -> MandateDetail | None:
        """``GET /mandate/detail?mndtId=…&force=true``: the mandate in any state, prepared
        included (``force``); None when Twikey has no mandate with this number."""
        try:
            response = await self.call("GET", "/mandate/detail", params={"mndtId": mandate_number, "force": "true"})
        except TwikeyError as exc:
            if exc.code in ("err_no_contract", "err_not_found"):
                return None
            raise
        body = response.json()
        mndt = body.get("Mndt") if isinstance(body, dict) else None
        number = mndt.get("MndtId") if isinstance(mndt, dict) else None
        return MandateDetail(mandate_number=str(number or mandate_number), state=response.headers.get("X-STATE"))

    async def template_exists(self, template_id: str) -> bool:
        """``GET /payment/methods?ct=…`` (reference §10): Twikey publishes no list of templates,
        but this read answers 200 for a template of the key and ``err_no_such_ct`` otherwise. The
        200 body's shape is not published, so only the status is read."""
        try:
            await self.call("GET", "/payment/methods", params={"ct": template_id})
        except TwikeyError as exc:
            if exc.code in ("err_no_such_ct", "err_invalid_ct"):
                return False
            raise
        return True

    # ---- feeds -----------------------------------------------------------------------------
    async def feed(
        self, name: str, resume_after: int | None, params: Sequence[tuple[str, str]] | None = None
    ) -> FeedPage:
        """One page of a feed; ``params`` replaces the feed's usual query (e.g. paid pay links only)."""
        headers = {} if resume_after is None else {"X-RESUME-AFTER": str(resume_after)}
        query = FEED_PARAMS[name] if params is None else params
        response = await self.call("GET", FEED_PATHS[name], params=query, headers=headers)
        body = response.json()
        items = body.get(FEED_KEYS[name]) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise TwikeyError("err_unexpected_response", f"feed {name} answered without {FEED_KEYS[name]}", 200)
        last = response.headers.get("X-LAST")
        return FeedPage(items=items, last=int(last) if last and last.strip().isdigit() else None)

    # ---- transactions and pay links ------------------------------------------------------------
    async def create_transaction(self, form: dict[str, str], idempotency_key: str) -> dict[str, Any]:
        response = await self.call("POST", "/transaction", data=form, headers={"Idempotency-Key": idempotency_key})
        entries = response.json().get("Entries") or []
        if not entries:
            raise TwikeyError("err_unexpected_response", "transaction created without Entries", 200)
        return dict(entries[0])

    async def transaction_by_ref(self, ref: str) -> dict[str, Any] | None:
        try:
            response = await self.call("GET", "/transaction/detail", params={"ref": ref})
        except TwikeyError as exc:
            if exc.code in ("err_not_found", "err_no_transaction"):
                return None
            raise
        entries = response.json().get("Entries") or []
        return dict(entries[0]) if entries else None

    async def bulk_status(self, batch_id: str) -> list[dict[str, Any]] | None:
        """``GET /transaction/bulk?batchId=…``: one result per item of the batch, as an array
        ([OAS]); None while Twikey is still processing it (409, no error code)."""
        try:
            response = await self.call("GET", "/transaction/bulk", params={"batchId": batch_id})
        except TwikeyError as exc:
            if exc.status == 409:
                return None
            raise
        body = response.json()
        if not isinstance(body, list):
            raise TwikeyError("err_unexpected_response", "bulk status answered without an array", 200)
        return [dict(item) for item in body]

    async def create_paylink(self, form: dict[str, str], idempotency_key: str) -> dict[str, Any]:
        response = await self.call("POST", "/payment/link", data=form, headers={"Idempotency-Key": idempotency_key})
        return dict(response.json())

    async def paylink_by_ref(self, ref: str) -> dict[str, Any] | None:
        try:
            response = await self.call("GET", "/payment/link", params={"ref": ref})
        except TwikeyError as exc:
            if exc.code in ("err_not_found",):
                return None
            raise
        links = response.json().get("Links") or []
        return dict(links[-1]) if links else None


@dataclass
class TwikeyGateway:
    """What a process holds to talk to Twikey: one HTTP connection pool and the session cache."""

    http: httpx.AsyncClient
    sessions: SessionCache
    retry: RetryPolicy

    def client(self, credentials: Credentials) -> TwikeyClient:
        return TwikeyClient(self.http, credentials, self.sessions, self.retry)

    async def aclose(self) -> None:
        await self.http.aclose()
