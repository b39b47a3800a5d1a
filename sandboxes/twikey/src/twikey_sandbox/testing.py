"""Helpers for suites that drive Koppel against this sandbox: the body of a Koppel connection, and
a recorder that keeps every Twikey API response so a suite can check them against the contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import contract


def koppel_connection(creditor: dict[str, Any], sandbox_base: str) -> dict[str, str]:
    """The body of sync-svc's ``PUT /v1/twikey/connection`` for a creditor made with
    ``POST /_sandbox/creditors`` on the sandbox at ``sandbox_base``."""
    return {
        "api_key": creditor["api_key"],
        "base_url": f"{sandbox_base}/creditor",
        "core_template_id": str(creditor["templates"]["CORE"]),
        "b2b_template_id": str(creditor["templates"]["B2B"]),
    }


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    headers: dict[str, str]
    body: bytes


class ResponseRecorder:
    """ASGI wrapper that keeps every ``/creditor`` response, for the contract check."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[Exchange] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/creditor"):
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):  # recorded before the client has the whole answer
                    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])}
                    body = b"".join(chunks)
                    self.seen.append(Exchange(scope["method"], scope["path"], start["status"], headers, body))
            await send(message)

        await self.app(scope, receive, capture)

    def breaches(self, since: int = 0) -> list[str]:
        """Every way the responses recorded from ``since`` on break Twikey's contract."""
        return [
            f"{x.method} {x.path} -> {x.status}: {problem}"
            for x in self.seen[since:]
            for problem in contract.problems(x.method, x.path, x.status, x.headers, x.body)
        ]
