"""The chaos drill's fault plan and verdict, without a running system (the drill itself restarts
PostgreSQL and RabbitMQ and runs only under ``make chaos`` and tests/chaos)."""

from __future__ import annotations

import random
from collections import Counter

from koppel_testkit.chaos import KILLABLE, ChaosReport, FaultRecord, _judge, plan_faults


def test_the_plan_has_the_kills_asked_for_and_both_restarts() -> None:
    faults = plan_faults(random.Random(3), kills=6, infrastructure=True)
    kills = [f.removeprefix("kill ") for f in faults if f.startswith("kill ")]
    assert len(kills) == 6 and set(kills) <= set(KILLABLE)
    assert sorted(f for f in faults if f.startswith("restart ")) == ["restart postgresql", "restart rabbitmq"]
    assert plan_faults(random.Random(3), kills=6, infrastructure=True) == faults  # a seed replays a drill
    assert not [f for f in plan_faults(random.Random(3), 2, infrastructure=False) if f.startswith("restart")]


def clean_report(numbers: set[str]) -> ChaosReport:
    once = Counter(dict.fromkeys(numbers, 1))
    return ChaosReport(
        payments=len(numbers),
        faults=[FaultRecord("kill sync-worker", 0.0, back_after_s=1.0, outbox_drained_after_s=2.0)],
        memos=once.copy(),
        matches=once.copy(),
        collections=once.copy(),
        mandates_per_customer=Counter({"C1": 1}),
    )


def test_a_drill_where_everything_happened_once_has_no_problem() -> None:
    numbers = {"INV-1", "INV-2"}
    report = clean_report(numbers)
    _judge(report, numbers, numbers)
    assert report.problems == []


def test_every_kind_of_damage_is_reported() -> None:
    numbers = {"INV-1", "INV-2", "INV-3"}
    report = clean_report(numbers)
    report.memos["INV-1"] = 2  # booked twice
    del report.matches["INV-2"]  # never matched
    report.mandates_per_customer["C2"] = 2
    report.events_not_delivered = ["e1"]
    report.dead_letters = {"sync": [{"reason": "boom"}]}
    report.reconciliation_differences = [{"kind": "missing_booking"}]
    report.booking_errors = [{"id": "b1"}]
    report.faults.append(FaultRecord("restart postgresql", 1.0, back_after_s=None))
    _judge(report, numbers, numbers)
    text = "\n".join(report.problems)
    for expected in (
        "1 invoices with more than one of MEMO bookings",
        "1 invoices without matches",
        "1 customers with several mandates",
        "1 events never reached the ERP",
        "1 dead letters in sync-svc",
        "reconciliation found 1 differences",
        "1 bookings in error",
        "no recovery within 120 s after restart postgresql",
    ):
        assert expected in text, expected
    assert len(report.problems) == 8
    assert report.figures()["invoices_booked_twice"] == 1
