"""Prometheus metrics shared by every service (one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("koppel_http_requests_total", "HTTP requests", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "koppel_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OUTBOX_PUBLISHED = Counter("koppel_outbox_published_total", "Outbox events published and confirmed")
OUTBOX_PUBLISH_ERRORS = Counter("koppel_outbox_publish_errors_total", "Outbox events not confirmed")
EVENTS_HANDLED = Counter("koppel_events_handled_total", "Events handled", ["consumer", "type", "outcome"])
HANDLE_LATENCY = Histogram(
    "koppel_event_handle_seconds",
    "Time from an event's occurrence to its handling",
    ["consumer"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)
# Messages a service set aside because handling them failed on their own, waiting for an operator
# (collection-svc's parked Twikey updates); read from the database at each scrape.
PARKED_MESSAGES = Gauge("koppel_parked_messages", "Messages parked for an operator", ["service"])
# Runs of a worker's background loop that raised (koppel_shared.loops); the loop goes on.
LOOP_FAILURES = Counter("koppel_loop_failures_total", "Background loop runs that failed", ["loop"])
