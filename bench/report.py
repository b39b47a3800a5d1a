"""Assemble every ``bench/results/*.json`` into ``bench/results/latest.md`` (run by ``make bench``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _rows(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for key, inner in value.items():
            rows += _rows(f"{prefix}.{key}" if prefix else key, inner)
        return rows
    if isinstance(value, float):
        return [(prefix, f"{value:,.2f}")]
    return [(prefix, f"{value:,}" if isinstance(value, int) else str(value))]


def render() -> str:
    parts = ["# Koppel benchmark results", ""]
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        m = result["machine"]
        parts += [
            f"## {result['benchmark']}",
            "",
            f"{result['date']} · {m['cpus']} CPUs · load {', '.join(f'{x:.2f}' for x in m['load_average'])} · "
            f"Python {m['python']} · {m['postgres']} · RabbitMQ {m['rabbitmq']}",
            "",
        ]
        if result.get("notes"):
            parts += [result["notes"], ""]
        parts += ["| figure | value |", "|---|---|"]
        parts += [f"| {k} | {v} |" for k, v in _rows("", result["figures"])]
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    out = RESULTS / "latest.md"
    out.write_text(render())
    print(f"written to {out}")
