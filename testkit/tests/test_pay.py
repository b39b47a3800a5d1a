"""The bank's side of the workload (``pay``) against a stand-in for the Twikey sandbox's control
API: what is retried, what counts as paid, what is reported."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from koppel_testkit.workload import Payment, WorkloadError, pay


@contextmanager
def sandbox(answers: dict[str, list[int]], state: str = "PAID") -> Iterator[tuple[str, list[str]]]:
    """POST <path> answers the statuses listed for it in turn (the last one from then on);
    GET answers the transaction's ``state``. Yields the base URL and the requests seen."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append(f"POST {self.path}")
            statuses = answers[self.path]
            self._send(statuses.pop(0) if len(statuses) > 1 else statuses[0], {})

        def do_GET(self) -> None:
            seen.append(f"GET {self.path}")
            self._send(200, {"state": state})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def payment(tx: str, kind: str = "transaction") -> Payment:
    return Payment("id", f"INV-{tx}", "C1", 100, twikey_tx=tx, kind=kind)


def test_a_server_error_is_retried_and_a_repeat_that_finds_it_paid_is_accepted() -> None:
    with sandbox({"/_sandbox/transactions/7/paid": [503, 409]}) as (url, seen):
        accepted = pay(url, [payment("7")])
    assert set(accepted) == {"INV-7"}
    assert seen == [
        "POST /_sandbox/transactions/7/paid",
        "POST /_sandbox/transactions/7/paid",
        "GET /_sandbox/transactions/7",
    ]


def test_a_refusal_at_the_first_try_is_not_retried_and_is_reported() -> None:
    with sandbox({"/_sandbox/paylinks/9/pay": [404]}) as (url, seen), pytest.raises(WorkloadError, match="HTTP 404"):
        pay(url, [payment("9", kind="paylink")])
    assert seen == ["POST /_sandbox/paylinks/9/pay"]


def test_a_repeat_that_finds_it_unpaid_is_reported() -> None:
    with (
        sandbox({"/_sandbox/transactions/8/paid": [500, 409]}, state="OPEN") as (url, _),
        pytest.raises(WorkloadError, match="HTTP 409"),
    ):
        pay(url, [payment("8")])


def test_server_errors_are_retried_five_times_then_reported() -> None:
    with sandbox({"/_sandbox/transactions/5/paid": [502]}) as (url, seen), pytest.raises(WorkloadError, match="502"):
        pay(url, [payment("5")])
    assert seen == ["POST /_sandbox/transactions/5/paid"] * 5
