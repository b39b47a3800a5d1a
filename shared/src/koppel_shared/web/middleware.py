"""Pure ASGI middleware (cheaper than ``BaseHTTPMiddleware``): a correlation id per request,
bound to the logs and echoed in ``X-Request-ID``; request metrics by route template."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import structlog

from koppel_shared.metrics import HTTP_LATENCY, HTTP_REQUESTS

Scope = dict[str, Any]


class RequestContextMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id") or headers.get(b"x-correlation-id")
        correlation_id = incoming.decode("latin-1")[:128] if incoming else uuid.uuid4().hex
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.setdefault("headers", [])
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append((b"x-request-id", correlation_id.encode("latin-1")))
            await send(message)

        with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", "unmatched")
                HTTP_REQUESTS.labels(scope["method"], template, str(status)).inc()
                HTTP_LATENCY.labels(scope["method"], template).observe(time.perf_counter() - started)


# Text PostgreSQL cannot store (NUL) or that is not text at all (a lone UTF-16 surrogate):
# refused at the door, before any use case runs, so nothing is half done with it.
_NUL = re.compile(rb"\\u0000|\x00", re.IGNORECASE)
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89aAbB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89aAbB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)
_BAD_QUERY = re.compile(rb"%00|\x00|%[eE][dD]%[aAbB][0-9a-fA-F]%")  # NUL, or UTF-8-encoded surrogates


class InputSanityMiddleware:
    """Refuses requests whose body, query or path carry NUL characters or lone surrogates with a
    422 ``invalid_characters`` problem. Bodies are read once and handed on unchanged."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope.get("path", "").encode()
        if _BAD_QUERY.search(scope.get("query_string", b"")) or _BAD_QUERY.search(raw_path):
            await _refuse(scope, send, "the path or query string")
            return
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if _NUL.search(body) or _LONE_SURROGATE.search(body):
            await _refuse(scope, send, "the request body")
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(scope: Scope, send: Any, where: str) -> None:
    correlation_id = scope.get("state", {}).get("correlation_id")
    body = json.dumps(
        {
            "type": "https://koppel.dev/problems/invalid_characters",
            "title": "Invalid characters",
            "status": 422,
            "code": "invalid_characters",
            "detail": f"{where} contains NUL characters or unpaired surrogates, which no field accepts",
            "instance": scope.get("path", ""),
            "correlation_id": correlation_id,
        }
    ).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 422, "headers": headers})
    await send({"type": "http.response.body", "body": body})
