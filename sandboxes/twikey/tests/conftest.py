"""Fixtures: the sandbox running for real on a loopback port, a webhook receiver, and a fresh
creditor (own API key, own feeds) per test so tests never see each other's data."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from twikey_sandbox import create_app
from twikey_sandbox.testing import ResponseRecorder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveSandbox:
    app: FastAPI
    base: str  # http://127.0.0.1:<port>

    @property
    def api(self) -> str:
        return f"{self.base}/creditor"


@pytest.fixture(scope="session")
def recorder() -> ResponseRecorder:
    return ResponseRecorder(create_app(api_key="DEFAULT-TEST-KEY", fault_seed=1234))


@pytest.fixture(autouse=True)
def responses_keep_the_contract(request: pytest.FixtureRequest, recorder: ResponseRecorder) -> Iterator[None]:
    """Every response of the Twikey API a test provokes is checked against the contract written
    from Twikey's description (``twikey_sandbox.contract``); a breach fails that test."""
    first = len(recorder.seen)
    yield
    if breaches := recorder.breaches(since=first):
        pytest.fail("responses break Twikey's contract:\n" + "\n".join(breaches), pytrace=False)


@pytest.fixture(scope="session")
def sandbox(recorder: ResponseRecorder) -> Iterator[LiveSandbox]:
    app = recorder.app
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("sandbox did not start")
        time.sleep(0.05)
    yield LiveSandbox(app=app, base=f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class Received:
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class WebhookReceiver:
    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 200

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until `count` webhooks arrived (a wait, not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)


@pytest.fixture(scope="session")
def receiver() -> Iterator[WebhookReceiver]:
    port = _free_port()
    hook = WebhookReceiver(url=f"http://127.0.0.1:{port}/hook")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            hook.received.append(Received(path=path, query=query, headers=dict(self.headers)))
            self.send_response(hook.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hook
    server.shutdown()


@pytest.fixture
def control(sandbox: LiveSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sandbox.base}/_sandbox", timeout=60) as client:
        yield client
        client.delete("/faults")


@dataclass
class CreditorCtx:
    api_key: str
    core: int
    b2b: int
    merchant_id: int
    client: httpx.Client  # logged in, base URL = .../creditor

    def invite(self, ct: int | None = None, **fields: Any) -> dict[str, Any]:
        data = {"ct": ct or self.core, "email": "an@example.be", "firstname": "An", "lastname": "Peeters", **fields}
        r = self.client.post("/invite", data=data)
        assert r.status_code == 200, r.text
        return r.json()

    def drain(self, path: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self.client.get(path).json()[key]
            if not page:
                return items
            items += page


@pytest.fixture
def receiver_reset(receiver: WebhookReceiver) -> WebhookReceiver:
    receiver.received.clear()
    receiver.status = 200
    return receiver


@pytest.fixture
def creditor(sandbox: LiveSandbox, control: httpx.Client, receiver_reset: WebhookReceiver) -> Iterator[CreditorCtx]:
    made = control.post("/creditors", json={"webhook_url": receiver_reset.url}).json()
    with httpx.Client(base_url=sandbox.api, timeout=30) as client:
        r = client.post("", data={"apiToken": made["api_key"]})
        assert r.status_code == 200, r.text
        client.headers["Authorization"] = r.headers["Authorization"]
        yield CreditorCtx(
            api_key=made["api_key"],
            core=made["templates"]["CORE"],
            b2b=made["templates"]["B2B"],
            merchant_id=made["merchant_id"],
            client=client,
        )


@pytest.fixture
def mandate(creditor: CreditorCtx, control: httpx.Client) -> str:
    """A signed CORE mandate of ``creditor`` (its feed drained)."""
    mndt = creditor.invite()["mndtId"]
    control.post(f"/mandates/{mndt}/sign", json={"iban": "BE16645348971174", "bic": "JVBABE22"})
    creditor.drain("/mandate", "Messages")
    return str(mndt)
