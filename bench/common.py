"""Helpers for benchmarks: percentiles, machine description, writing results.

Every benchmark writes ``bench/results/<name>.json``; ``report.py`` assembles them into
``bench/results/latest.md``. Figures are measured beside a reference in the same run because the
machines are shared and noisy: the ratio is what to quote.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def machine() -> dict[str, Any]:
    def cmd(*args: str) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "postgres": cmd("psql", "--version"),
        "rabbitmq": cmd("rabbitmqctl", "version"),
    }


def write_result(name: str, figures: dict[str, Any], notes: str = "") -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "figures": figures,
        "notes": notes,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def start_server(module_args: list[str], health_url: str, what: str) -> subprocess.Popen[bytes]:
    """``python -m <module_args>`` in its own process, returned once ``health_url`` answers 200."""
    import httpx

    proc = subprocess.Popen([sys.executable, "-m", *module_args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(health_url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{what} did not start")
