"""Benchmark: the console's pages for a tenant with 100,000 invoices, against the 300 ms target.

The five service APIs and the console run in this process (each in its own thread and event loop,
``tests/e2e/console_stack.py``) on fresh databases holding one tenant's year: 100,000 invoices
and their collections (mostly paid), 58,000 bookings, 300 mandates, 600 ERP deliveries. Each
page is loaded N times, the pages taking turns so that a drift in the machine's load hits them
alike, after one warm-up load each. Server time is the console's own ``Server-Timing`` figure: from
the request reaching the console to its answer being ready, the service calls it waits for
included; the wall time seen by the client on loopback is beside it.

Usage: ``uv run python bench/console_pages.py [--invoices 100000] [--loads 30]``
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))

import httpx
from common import percentile, write_result
from console_stack import mandate_with_history, running

TARGET_MS = 300.0


def pages(stack: Any, second_invoices_page: str) -> dict[str, str]:
    return {
        "overview": "/console/overview",
        "invoices": "/console/invoices",
        "invoices_second_page": second_invoices_page,
        "invoices_search_number": "/console/invoices?q=INV-0054321",
        "invoices_search_name": "/console/invoices?q=Klant+17",
        "invoices_search_twikey_id": "/console/invoices?q=TX54321",
        "invoices_search_no_match": "/console/invoices?q=nobody",
        "invoices_failed": "/console/invoices?status=failed",
        "invoices_open": "/console/invoices?status=open",
        "invoices_reversed_none": "/console/invoices?status=reversed",
        "mandates": "/console/mandates",
        "mandates_search": "/console/mandates?q=Klant+42",
        "mandate_detail": f"/console/mandates/{mandate_with_history(stack.tenant)}",
        "bookings_open": "/console/bookings?tab=open",
        "bookings_errors": "/console/bookings?tab=errors",
        "bookings_search": "/console/bookings?tab=booked&q=INV-0054321",
        "deliveries": "/console/deliveries",
        "deliveries_failed_mandates": "/console/deliveries?q=mandate.*&status=failed",
    }


def server_ms(response: httpx.Response) -> float:
    found = re.search(r"dur=([0-9.]+)", response.headers.get("server-timing", ""))
    if not found:
        raise RuntimeError(f"no Server-Timing on {response.url}")
    return float(found[1])


async def main_async(args: argparse.Namespace) -> None:
    started = time.monotonic()
    async with running(args.invoices) as stack:
        print(f"stack up with {args.invoices:,} invoices in {time.monotonic() - started:.1f} s", flush=True)
        async with httpx.AsyncClient(base_url=stack.console, timeout=60) as client:
            signed = await client.post("/console/login", data={"token": stack.token})
            assert signed.status_code == 303, signed.text
            first = await client.get("/console/invoices")
            second = re.search(r'href="([^"]+)" id="next-page"', first.text)
            assert second, "the invoices page has no next page"
            to_load = pages(stack, second[1].replace("&amp;", "&"))
            server: dict[str, list[float]] = {name: [] for name in to_load}
            wall: dict[str, list[float]] = {name: [] for name in to_load}
            first_load: dict[str, float] = {}
            for name, path in to_load.items():  # warm-up: connections, caches
                reply = await client.get(path)
                assert reply.status_code == 200 and 'role="alert"' not in reply.text, (name, reply.text[:2000])
                first_load[name] = server_ms(reply)
            for _ in range(args.loads):
                for name, path in to_load.items():
                    t = time.perf_counter()
                    reply = await client.get(path)
                    wall[name].append((time.perf_counter() - t) * 1000)
                    assert reply.status_code == 200, (name, reply.status_code)
                    server[name].append(server_ms(reply))
    figures: dict[str, Any] = {"tenant_invoices": args.invoices, "loads_per_page": args.loads, "target_ms": TARGET_MS}
    over = []
    for name in to_load:
        p50, p95 = percentile(server[name], 50), percentile(server[name], 95)
        figures[f"page.{name}"] = {
            "server_p50_ms": round(p50, 1),
            "server_p95_ms": round(p95, 1),
            "wall_p50_ms": round(percentile(wall[name], 50), 1),
            "first_load_ms": round(first_load[name], 1),
            "within_target": "yes" if p95 <= TARGET_MS else "no",
        }
        if p95 > TARGET_MS:
            over.append(name)
        print(f"{name:28} server p50 {p50:7.1f} ms  p95 {p95:7.1f} ms", flush=True)
    figures["pages_over_target_at_p95"] = ", ".join(over) or "none"
    written = write_result(
        "console_pages",
        figures,
        notes=(
            f"One tenant with {args.invoices:,} invoices posted evenly over a year (collections mostly paid, 58 % "
            "booked, 300 mandates, 600 ERP deliveries), the five service APIs and the console in one process on fresh "
            f"databases. Each page loaded {args.loads} times (pages in turn, after a warm-up load each); server "
            "time = the console's Server-Timing (request in → page ready, the service calls included); target "
            f"{TARGET_MS:g} ms at p95. The overview's charts cover the last 30 days. first_load = the warm-up load "
            "(the first after start opens the connections), not in p50/p95."
        ),
    )
    print(f"written {written}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=30, help="loads of each page")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
