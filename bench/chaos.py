"""The chaos drill at full size (``make chaos``): N paid collections (default 10,000) while
service processes are SIGKILLed and restarted, RabbitMQ and PostgreSQL restart, the sandboxes
inject 5xx, timeouts after the write and 429s, and the ERP's endpoint fails 5 % of deliveries.

Checked against the sandboxes' own records (one MEMO and one match per payment in Twinfield, one
collection per invoice at Twikey), every event of the feed delivered to the ERP, no dead letter.
Writes the recovery time after each fault (every API ready and every work queue consumed again;
every outbox row committed before the fault published) to ``bench/results/chaos.json``.

Usage: ``uv run python bench/chaos.py [--payments 10000] [--kills 20] [--seed 1]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result

from koppel_testkit.chaos import run_drill


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="koppel-chaos-") as tmp:
        report = run_drill(Path(tmp), args.payments, args.kills, infrastructure=True, seed=args.seed)
    figures = report.figures()
    log = figures.pop("fault_log")
    figures["recovery"] = {
        f"{i:02d} {f['fault']}": f"back {f['back_after_s']} s · outbox drained {f['outbox_drained_after_s']} s"
        for i, f in enumerate(log, 1)
    }
    figures["problems"] = "; ".join(figures["problems"]) or "none"
    notes = (
        f"{args.payments} paid collections, {args.kills} SIGKILLs of service processes at random moments, one "
        "RabbitMQ restart and one PostgreSQL restart (in random order, one at a time, each after the previous "
        "recovered); Twikey sandbox: 5 % timeouts after the write on collections, 3 % 5xx, 2 % 429, 5 % webhooks "
        "dropped; Twinfield sandbox: 5 % timeouts after the write, 3 % 5xx, 2 % 429; ERP endpoint: 5 % 500s. "
        "back = every API ready and every work queue consumed again; outbox drained = every outbox row "
        "committed before the fault published."
    )
    write_result("chaos", figures, notes)
    print(figures)
    return 0 if figures["problems"] == "none" else 1


if __name__ == "__main__":
    raise SystemExit(main())
