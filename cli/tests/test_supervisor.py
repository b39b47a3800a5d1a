"""The local supervisor starts a process that died again, as a container runtime would, and
gives up on one that keeps dying."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from koppel_cli.localrun import Plan, Supervisor


def _wait_dead(supervisor: Supervisor, name: str) -> None:
    deadline = time.monotonic() + 10
    while supervisor.children[name].poll() is None:
        assert time.monotonic() < deadline, f"{name} did not die"
        time.sleep(0.02)


def test_a_killed_process_is_started_again_and_pids_json_follows(tmp_path: Path) -> None:
    supervisor = Supervisor(Plan(log_dir=tmp_path), say=lambda _: None)
    supervisor._launch("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ))
    try:
        first = supervisor.children["sleeper"].pid
        assert json.loads((tmp_path / "pids.json").read_text()) == {"sleeper": first}
        assert supervisor.restart_dead() == []

        os.kill(first, signal.SIGKILL)
        _wait_dead(supervisor, "sleeper")
        assert supervisor.restart_dead() == ["sleeper"]

        second = supervisor.children["sleeper"].pid
        assert second != first and supervisor.children["sleeper"].poll() is None
        assert json.loads((tmp_path / "pids.json").read_text()) == {"sleeper": second}
    finally:
        supervisor.stop(grace=2)


def test_a_process_that_keeps_dying_stops_the_run(tmp_path: Path) -> None:
    supervisor = Supervisor(Plan(log_dir=tmp_path), say=lambda _: None)
    supervisor._launch("crasher", [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ))
    try:
        for _ in range(3):
            _wait_dead(supervisor, "crasher")
            supervisor.restart_dead(limit=3)
        _wait_dead(supervisor, "crasher")
        with pytest.raises(SystemExit, match="crasher keeps exiting"):
            supervisor.restart_dead(limit=3)
    finally:
        supervisor.stop(grace=2)
