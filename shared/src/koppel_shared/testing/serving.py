"""An ASGI app served for real on a free loopback port, in a thread (sandboxes, fake peers,
receivers): ``with Served(app) as served: httpx.get(served.base + "/...")``."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Literal


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, app: Any, port: int | None = None, lifespan: Literal["auto", "on", "off"] = "auto") -> None:
        self.app = app
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
