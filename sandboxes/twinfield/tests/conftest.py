"""Fixtures: one sandbox on a real loopback port (uvicorn in a thread) for the whole session,
reset before every test, and a small ProcessXml caller built on httpx + lxml."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from twinfield_sandbox import SandboxConfig, create_app
from twinfield_sandbox.testing import ORG, Twinfield


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    app: object
    base_url: str

    @property
    def sandbox(self):
        return self.app.state.sandbox


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    app = create_app(SandboxConfig())
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline:
            raise RuntimeError("sandbox did not start")
        time.sleep(0.02)
    yield Server(app, f"http://127.0.0.1:{port}")
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(autouse=True)
def fresh(server: Server) -> None:
    """Every test starts from the default seed with default settings."""
    server.sandbox.config = SandboxConfig()
    server.sandbox.reset()


@pytest.fixture(scope="session")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def token(http: httpx.Client) -> str:
    reply = http.post("/_sandbox/tokens", json={"client_id": "koppel-sandbox", "organisation": ORG})
    assert reply.status_code == 201
    return reply.json()["access_token"]


@pytest.fixture
def tw(http: httpx.Client, token: str) -> Twinfield:
    return Twinfield(http, token)
