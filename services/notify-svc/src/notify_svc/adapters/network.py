"""Reaching ERP endpoints: name resolution and the signed HTTP POST.

The sender never lets httpx resolve the host itself: it connects to an address that
``domain.urls`` has just allowed, sends the real ``Host`` header and uses the host name for TLS
(SNI and certificate check), so a DNS answer that changes between the check and the connect
(rebinding) cannot point a delivery at an internal address. Redirects are not followed (a
redirect to an internal address would be another way round the check) and only the first few
kilobytes of an answer are read.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from notify_svc.domain.urls import Target, UrlPolicy, UrlRefused, check_addresses

Resolver = Callable[[str, int], Awaitable[list[str]]]

RESPONSE_EXCERPT_BYTES = 2048


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the host name resolves to (A and AAAA)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return _addresses(infos)


def lookup(host: str, port: int) -> list[str]:
    """Blocking: every address the host name resolves to (A and AAAA)."""
    try:
        return _addresses(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    except (socket.gaierror, UnicodeError):
        return []


def _addresses(infos: Sequence[tuple[Any, ...]]) -> list[str]:
    found: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


class SharedLookups:
    """The delivery worker's resolver: look-ups run on threads of its own, and concurrent
    look-ups of one host share one thread.

    ``getaddrinfo`` blocks a thread until the name servers answer, and a caller's timeout does not
    free that thread. With asyncio's default executor (a handful of threads, shared with
    everything else), a few endpoints whose name servers never answer — each with several
    attempts in flight — would hold every thread, and every other endpoint's look-up would queue
    behind them and time out. Sharing the look-up per host keeps such an endpoint to one thread.
    """

    def __init__(self, threads: int, resolve: Callable[[str, int], list[str]] = lookup) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="notify-dns")
        self._resolve = resolve
        self._pending: dict[tuple[str, int], asyncio.Future[list[str]]] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        key = (host, port)
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().run_in_executor(self._executor, self._resolve, host, port)
            self._pending[key] = pending
            pending.add_done_callback(lambda f: self._done(key, f))
        # A caller that gives up (its deadline) leaves the look-up running for the others.
        return await asyncio.shield(pending)

    def _done(self, key: tuple[str, int], future: asyncio.Future[list[str]]) -> None:
        self._pending.pop(key, None)
        if not future.cancelled():
            future.exception()  # retrieved: a failure nobody waits for any more is not logged as lost

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


async def allowed_addresses(target: Target, policy: UrlPolicy, resolve: Resolver) -> list[str]:
    """The checked addresses for ``target`` (raises ``UrlRefused``)."""
    literal = target.literal
    addresses = [str(literal)] if literal is not None else await resolve(target.host, target.port)
    return [str(a) for a in check_addresses(target.host, addresses, policy)]


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    latency_ms: int
    error: str | None = None
    excerpt: str | None = None


def make_delivery_client(
    timeout: float, connect_timeout: float, max_connections: int, tls: ssl.SSLContext | None = None
) -> httpx.AsyncClient:
    """One client per endpoint (its own connection pool); pass one shared ``tls`` context —
    loading the CA bundle for each client is slow."""
    return httpx.AsyncClient(
        verify=tls or ssl.create_default_context(),
        timeout=httpx.Timeout(timeout, connect=connect_timeout, pool=timeout),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        follow_redirects=False,
        headers={"user-agent": "Koppel-Webhooks/1.0"},
    )


def _pinned_url(target: Target, address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{target.scheme}://{host}:{target.port}{target.path}"


def _host_header(target: Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


async def post(
    client: httpx.AsyncClient,
    target: Target,
    addresses: Sequence[str],
    headers: dict[str, str],
    body: bytes,
    total_timeout: float,
) -> SendResult:
    """POST ``body`` to the first of the checked ``addresses``; never raises for the endpoint's
    misbehaviour — a timeout or a refused connection is a result like a status code."""
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    request_headers = {**headers, "host": _host_header(target)}
    extensions = {"sni_hostname": target.host} if target.scheme == "https" and target.literal is None else {}
    try:
        # One deadline for the whole exchange: a server trickling bytes cannot hold a slot longer.
        async with asyncio.timeout(total_timeout):
            request = client.build_request(
                "POST", _pinned_url(target, addresses[0]), headers=request_headers, content=body, extensions=extensions
            )
            response = await client.send(request, stream=True)
            try:
                excerpt = b""
                async for chunk in response.aiter_raw():
                    excerpt += chunk
                    if len(excerpt) >= RESPONSE_EXCERPT_BYTES:
                        break
            finally:
                await response.aclose()
    except TimeoutError:
        return SendResult(None, elapsed(), f"timed out after {total_timeout:g} s")
    except httpx.TimeoutException as exc:
        return SendResult(None, elapsed(), f"timed out: {type(exc).__name__}")
    except httpx.HTTPError as exc:
        return SendResult(None, elapsed(), f"{type(exc).__name__}: {exc}"[:500])
    text = excerpt[:RESPONSE_EXCERPT_BYTES].decode(errors="replace")
    return SendResult(response.status_code, elapsed(), None, text or None)


async def send_checked(
    client: httpx.AsyncClient,
    target: Target,
    policy: UrlPolicy,
    resolve: Resolver,
    headers: dict[str, str],
    body: bytes,
    total_timeout: float,
) -> SendResult:
    """Resolve and check the host again (DNS rebinding), then POST."""
    started = time.perf_counter()
    try:
        addresses = await asyncio.wait_for(allowed_addresses(target, policy, resolve), timeout=total_timeout)
    except UrlRefused as exc:
        return SendResult(None, int((time.perf_counter() - started) * 1000), f"refused: {exc}")
    except TimeoutError:
        return SendResult(None, int((time.perf_counter() - started) * 1000), "name resolution timed out")
    return await post(client, target, addresses, headers, body, total_timeout)
