"""The overview of one tenant, the console's landing page: what each service reports (read in
parallel with the operator's token), put together into counts, ages and charts. A service that
does not answer leaves its own box with an error; the rest of the page still shows."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from koppel_console.services import Answer, ServiceApi

DAYS = 30
# Invoice statuses that still wait for money (or for a person).
OPEN_INVOICE = ("open", "scheduled", "submitted", "failed", "skipped")
# Mandates still waiting for the debtor or the bank.
UNSIGNED_MANDATE = ("requested", "prepared", "pending_bank")


@dataclass
class Overview:
    mandates: Answer
    invoices: Answer
    invoice_days: Answer
    bookings: Answer
    feeds: Answer
    endpoints: Answer
    runs: Answer
    now: datetime
    per_day: list[dict[str, Any]] = field(default_factory=list)

    @property
    def oldest_unsigned_mandate(self) -> datetime | None:
        oldest = (self.mandates.body or {}).get("oldest_created_at", {}) if self.mandates.ok else {}
        return _oldest(oldest.get(s) for s in UNSIGNED_MANDATE)

    @property
    def oldest_open_invoice(self) -> datetime | None:
        by_status = (self.invoices.body or {}).get("by_status", {}) if self.invoices.ok else {}
        return _oldest(by_status.get(s, {}).get("oldest_created_at") for s in OPEN_INVOICE)

    @property
    def oldest_open_booking(self) -> datetime | None:
        by_tab = (self.bookings.body or {}).get("by_tab", {}) if self.bookings.ok else {}
        return _oldest(by_tab.get(t, {}).get("oldest_created_at") for t in ("open", "error"))

    def feed_lags(self) -> list[dict[str, Any]]:
        """Per feed: how long ago it was last drained, and its last error."""
        rows = []
        for feed in self.feeds.items:
            drained = _parse(feed.get("last_drain_at"))
            rows.append(
                {
                    "feed": feed.get("feed"),
                    "lag": age(self.now, drained) if drained else "never drained",
                    "last_error": feed.get("last_error"),
                }
            )
        return rows

    def failing_endpoints(self) -> list[dict[str, Any]]:
        return [e for e in self.endpoints.items if not e.get("enabled", True) or e.get("consecutive_failures")]

    @property
    def bad_feed_messages(self) -> int:
        return len((self.feeds.body or {}).get("bad_messages", [])) if self.feeds.ok else 0

    @property
    def latest_run(self) -> dict[str, Any] | None:
        runs = self.runs.body if self.runs.ok and isinstance(self.runs.body, list) else []
        return runs[0] if runs else None


async def gather(api: ServiceApi, token: str, now: datetime | None = None) -> Overview:
    days = {"days": DAYS}
    mandates, invoices, invoice_days, bookings, feeds, endpoints, runs = await asyncio.gather(
        api.call("mandate", "GET", "/v1/mandates/stats", token),
        api.call("collection", "GET", "/v1/invoices/stats", token),
        api.call("collection", "GET", "/v1/invoices/stats/per-day", token, params=days),
        api.call("bookkeeping", "GET", "/v1/bookings/stats", token, params=days),
        api.call("sync", "GET", "/v1/twikey/feeds", token),
        api.call("notify", "GET", "/v1/webhook-endpoints", token),
        api.call("bookkeeping", "GET", "/v1/reconciliation/runs", token, params={"limit": 1}),
    )
    overview = Overview(
        mandates, invoices, invoice_days, bookings, feeds, endpoints, runs, now=now or datetime.now(UTC)
    )
    overview.per_day = merge_days(overview.invoice_days, overview.bookings)
    return overview


def merge_days(invoices: Answer, bookings: Answer) -> list[dict[str, Any]]:
    """One row per day: collected and paid (collection-svc) beside booked and latency (bookkeeping)."""
    days: dict[str, dict[str, Any]] = {}
    for answer in (invoices, bookings):
        if answer.ok and isinstance(answer.body, dict):
            for row in answer.body.get("per_day", []):
                days.setdefault(str(row["day"]), {"day": str(row["day"])}).update(row)
    return [days[d] for d in sorted(days)]


def age(now: datetime, then: datetime) -> str:
    """A duration as an operator reads it: 45 s, 12 min, 5 h, 3 d."""
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _oldest(values: Any) -> datetime | None:
    found = [p for p in (_parse(v) for v in values) if p is not None]
    return min(found, default=None)
