"""The overview's own arithmetic: ages as an operator reads them, the days of two services side by
side, and what counts as a failing ERP endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from koppel_console.overview import Overview, age, merge_days
from koppel_console.services import Answer

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_age_uses_the_largest_whole_unit() -> None:
    assert age(NOW, NOW - timedelta(seconds=45)) == "45 s"
    assert age(NOW, NOW - timedelta(minutes=12, seconds=59)) == "12 min"
    assert age(NOW, NOW - timedelta(hours=5, minutes=1)) == "5 h"
    assert age(NOW, NOW - timedelta(days=369, hours=23)) == "369 d"
    assert age(NOW, NOW + timedelta(seconds=3)) == "0 s"  # a clock a little ahead is not negative


def test_days_of_both_services_are_merged_and_a_service_down_leaves_its_figures_out() -> None:
    invoices = Answer(True, 200, {"per_day": [{"day": "2026-12-05", "collected": 3, "paid": 2}]})
    bookings = Answer(True, 200, {"per_day": [{"day": "2026-12-05", "booked": 2}, {"day": "2026-12-06", "booked": 1}]})
    assert merge_days(invoices, bookings) == [
        {"day": "2026-12-05", "collected": 3, "paid": 2, "booked": 2},
        {"day": "2026-12-06", "booked": 1},
    ]
    down = Answer(False, 503, None, "bookkeeping-svc is not reachable")
    assert merge_days(invoices, down) == [{"day": "2026-12-05", "collected": 3, "paid": 2}]


def overview(**answers: Answer) -> Overview:
    empty = Answer(True, 200, {})
    names = ("mandates", "invoices", "invoice_days", "bookings", "feeds", "endpoints", "runs")
    return Overview(*(answers.get(name, empty) for name in names), now=NOW)


def test_failing_endpoints_are_disabled_ones_or_ones_failing_now() -> None:
    endpoints = Answer(
        True,
        200,
        {
            "data": [
                {"url": "https://a", "enabled": True, "consecutive_failures": 0},
                {"url": "https://b", "enabled": True, "consecutive_failures": 3},
                {"url": "https://c", "enabled": False, "consecutive_failures": 0},
            ]
        },
    )
    assert [e["url"] for e in overview(endpoints=endpoints).failing_endpoints()] == ["https://b", "https://c"]


def test_oldest_open_item_and_feed_lag_come_from_the_services_figures() -> None:
    invoices = Answer(
        True,
        200,
        {
            "by_status": {
                "paid": {"count": 5, "oldest_created_at": "2025-01-01T00:00:00+00:00"},  # not open
                "failed": {"count": 1, "oldest_created_at": "2026-11-30T12:00:00+00:00"},
                "scheduled": {"count": 2, "oldest_created_at": "2026-12-01T12:00:00+00:00"},
            }
        },
    )
    feeds = Answer(
        True,
        200,
        {"feeds": [{"feed": "mandate", "last_drain_at": "2026-12-06T11:59:20+00:00"}, {"feed": "paylink"}]},
    )
    o = overview(invoices=invoices, feeds=feeds)
    assert o.oldest_open_invoice == datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert [(f["feed"], f["lag"]) for f in o.feed_lags()] == [("mandate", "40 s"), ("paylink", "never drained")]
