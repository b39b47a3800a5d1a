"""The whole system as a child process, started exactly as a newcomer does: ``koppel run``, with its
own ports, database names and broker names so it never meets a developer's run. End-to-end tests,
the chaos run and the end-to-end benchmark use it."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from koppel_cli import infra
from koppel_cli.demo import Urls
from koppel_cli.localrun import Plan, demo_token
from koppel_shared.settings import IssuerSettings

REPO = Path(__file__).resolve().parents[3]


@dataclass
class System:
    plan: Plan
    token: str
    log_dir: Path
    process: subprocess.Popen[str]
    output: list[str]

    @property
    def urls(self) -> Urls:
        return self.plan.demo_urls()

    def service_url(self, name: str) -> str:
        return self.plan.service_urls()[name]

    @property
    def admin_token(self) -> str:
        """The admin token ``koppel run`` wrote for this system (creates tenants)."""
        return self.plan.admin_token_file.read_text().strip()


@contextmanager
def running_system(
    tmp: Path, env: dict[str, str] | None = None, name: str = "e2e", again: System | None = None
) -> Iterator[System]:
    """``env`` adds settings for every process (e.g. a shorter safety-net drain). ``again``: start
    the same system once more (its ports, names and state folder) after it was stopped; the
    databases are dropped when the first one ends."""
    offset = again.plan.offset if again else random.randrange(2000, 4000, 10)
    prefix = again.plan.prefix if again else f"{name}{uuid.uuid4().hex[:6]}_"
    log_dir = tmp / "log"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KOPPEL_")}, **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "koppel_cli.main", "run", "--port-offset", str(offset), "--prefix", prefix,
         "--log-dir", str(log_dir)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output: list[str] = []
    deadline = time.monotonic() + 240
    assert process.stdout is not None
    try:
        while True:
            line = process.stdout.readline()
            if line:
                output.append(line)
            if "Koppel is running." in line:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("koppel run did not start:\n" + "".join(output[-40:]))
        # Keep reading what the supervisor says (restarts, warnings): a full pipe would block it.
        reader = threading.Thread(target=lambda: output.extend(process.stdout or []), daemon=True)
        reader.start()
        plan = Plan(offset=offset, prefix=prefix, log_dir=log_dir)
        yield System(plan, demo_token(IssuerSettings()), log_dir, process, output)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if again is None:
            _drop_databases(prefix)
            # Its queues too: left behind, they pile up across runs until the broker stops answering.
            infra.sweep_queues("^" + re.escape(prefix))


def _drop_databases(prefix: str) -> None:
    import asyncio

    from koppel_cli.localrun import SERVICES
    from koppel_shared.migrations import drop_database
    from koppel_shared.testing.fixtures import PG_BASE

    async def drop() -> None:
        for name in SERVICES:
            await drop_database(f"{PG_BASE}/{prefix}koppel_{name}")

    asyncio.run(drop())
