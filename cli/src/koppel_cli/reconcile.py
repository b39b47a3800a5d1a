"""``koppel reconcile``: start a reconciliation run in bookkeeping-svc (KOPPEL_BOOKKEEPING_URL),
show its progress while it runs and the differences at the end. Exit code 0 when no difference
is open, 1 when some are, 2 when the run failed."""

from __future__ import annotations

import os
import time
import uuid
from datetime import date, timedelta
from typing import Annotated, Any

import httpx
import typer

from koppel_shared.auth import issue_token
from koppel_shared.settings import IssuerSettings

PROGRESS_KEYS = (
    ("twikey_transactions", "Twikey transactions"),
    ("twikey_paylinks", "pay links"),
    ("twikey_mandates", "mandate messages"),
    ("koppel_bookings", "bookings"),
    ("twinfield_lines", "Twinfield lines"),
    ("twinfield_credits", "credits"),
)


def _line(run: dict[str, Any]) -> str:
    progress = run.get("progress") or {}
    counts = ", ".join(f"{label} {progress[key]}" for key, label in PROGRESS_KEYS if key in progress)
    return f"{run['status']:<9} {progress.get('phase', '-'):<9} {counts}"


def reconcile(
    tenant: Annotated[uuid.UUID, typer.Option(help="Tenant id.")],
    since: Annotated[str | None, typer.Option(help="YYYY-MM-DD: first day (whole periods from its month).")] = None,
    every: Annotated[float, typer.Option(help="Seconds between progress lines.")] = 1.0,
) -> None:
    """Compare Twikey's record of what was paid and of its mandates, Koppel's bookings and
    mandates, and Twinfield's MEMOs and matches; list every difference (a mandate Koppel does not
    know names where to adopt it). Exit 0: none open, 1: differences, 2: the run failed."""
    if since is not None:
        try:
            date.fromisoformat(since)
        except ValueError:
            raise typer.BadParameter("use YYYY-MM-DD", param_hint="--since") from None
    settings = IssuerSettings()
    token = issue_token(settings.signing_key, tenant, ["operator"], ttl=timedelta(hours=2))
    base = os.environ.get("KOPPEL_BOOKKEEPING_URL", "http://127.0.0.1:8104").rstrip("/")
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        try:
            reply = http.post("/v1/reconciliation/runs", json={"since": since} if since else {})
        except httpx.HTTPError as exc:
            raise typer.BadParameter(f"bookkeeping-svc at {base} is not reachable: {exc}") from exc
        if reply.status_code != 202:
            typer.echo(reply.text, err=True)
            raise typer.Exit(2)
        run = reply.json()
        typer.echo(f"run {run['id']}: {run['since']} .. {run['until']}")
        shown = ""
        while run["status"] in ("requested", "running"):
            time.sleep(every)
            run = http.get(f"/v1/reconciliation/runs/{run['id']}").json()
            if _line(run) != shown:
                shown = _line(run)
                typer.echo(shown)
        if run["status"] != "done":
            typer.echo(f"failed: {run.get('error')}", err=True)
            raise typer.Exit(2)
        items = _differences(http, run["id"])
        for d in items:
            typer.echo(f"{d['status']:<7} {d['kind']:<20} {d['key']:<32} fix={d['fix']:<5} {d['detail']}")
        typer.echo(f"{run['differences']} difference(s), {run['open_differences']} open")
        if run["open_differences"]:
            raise typer.Exit(1)


def _differences(http: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = http.get(f"/v1/reconciliation/runs/{run_id}/differences", params={"limit": 1000, "offset": len(items)})
        found = page.json()["items"]
        items += found
        if len(found) < 1000:
            return items
