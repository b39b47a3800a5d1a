"""Benchmark: a burst of paid collections booked and matched in Twinfield by bookkeeping-svc,
against the sandbox enforcing the fair-use limits.

Setup: the Twinfield sandbox in its own process (limits on: per client+organisation ``--budget``
credits per sliding minute, reads 1, writes 3), N open sales invoices seeded, a fresh database,
bookkeeping-svc's worker in this process (consumers, outbox relay, booker) connected with a
refresh token. Then N ``collection.paid`` envelopes are published to the exchange as
collection-svc would, and the clock runs until every booking is ``matched``.

The bound is set by the credits: per 25 payments one look-up per invoice number (25 × 1: real
browse definitions confirm no operator that asks for several invoice numbers at once), one post
(3) and one match (3) = 31 credits, so at most ``budget / 31 × 25`` bookings per minute
(403.2/min at Twinfield's 500). (With one look-up per batch it was 7 credits and 1785.7/min.)
Reported: bookings per minute, credits per booking (from the sandbox's ``/_sandbox/credits``),
the ratio to the bound, 429s, and a check in the sandbox's own records (one MEMO per payment, all
matched). The service spreads its credits evenly (5 % of the budget kept as headroom; of the rest a
token bucket holds 4 % and refills the other 96 % over the minute, so no sliding minute ever sees
more than the budget): the steady state reaches at most about 0.91 of the bound, with no 429.

Usage: ``uv run python bench/twinfield_bookings.py [--count 10000] [--budget 500]``
(``--budget`` lowers or raises the sandbox's per-organisation budget; the ratio to the bound is the
figure to quote).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import sqlalchemy as sa
from common import start_server, write_result
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from bookkeeping_svc.bootstrap import definition
from bookkeeping_svc.settings import Settings
from koppel_shared.auth import issue_service_token, issue_token
from koppel_shared.db import make_engine
from koppel_shared.events import new_event
from koppel_shared.events.collection import CollectionPaid
from koppel_shared.logging import configure_logging
from koppel_shared.messaging.broker import Broker
from koppel_shared.migrations import drop_database, ensure_database, migrate
from koppel_shared.service import build_api, run_worker
from koppel_shared.tenants import known_tenants
from koppel_shared.testing.fixtures import TEST_PUBLIC_KEYS, TEST_SIGNING_KEY

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"
OFFICE = "NLA000001"
CREDITS_PER_25 = 31


async def register(db_url: str, tenant: uuid.UUID) -> None:
    """The tenant as bookkeeping-svc knows it once sync-svc registered it (tenant.registered)."""
    engine = make_engine(db_url, 1)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(known_tenants).values(tenant_id=tenant, name="bench"))
    finally:
        await engine.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(port: int) -> subprocess.Popen[bytes]:
    return start_server(
        ["twinfield_sandbox", "--host", "127.0.0.1", "--port", str(port)],
        f"http://127.0.0.1:{port}/healthz",
        "Twinfield sandbox",
    )


def seed(sandbox: httpx.Client, count: int, customers: int) -> list[tuple[str, str, int]]:
    rng = random.Random(42)
    codes = [str(10000 + i) for i in range(customers)]
    for start in range(0, customers, 1000):
        batch = [
            {"code": c, "name": f"Klant {c}", "email": f"klant{c}@example.nl"} for c in codes[start : start + 1000]
        ]
        sandbox.post(f"/_sandbox/offices/{OFFICE}/customers", json={"customers": batch}).raise_for_status()
    invoices = [
        (f"F{datetime.now(UTC).year}-{i:06d}", codes[i % customers], rng.randint(500, 250_000)) for i in range(count)
    ]
    for start in range(0, count, 2000):
        chunk = invoices[start : start + 2000]
        body = {"invoices": [{"customer": c, "invoice_number": n, "amount_cents": a} for n, c, a in chunk]}
        sandbox.post(f"/_sandbox/offices/{OFFICE}/invoices", json=body, timeout=120).raise_for_status()
    return invoices


def publish_burst(exchange: str, tenant: str, invoices: list[tuple[str, str, int]]) -> None:
    async def go() -> None:
        broker = Broker(AMQP, exchange)
        await broker.connect()
        now = datetime.now(UTC)
        envelopes = [
            new_event(
                CollectionPaid(
                    collection_id=str(uuid.uuid4()),
                    invoice_id=str(uuid.uuid4()),
                    invoice_number=number,
                    customer_number=customer,
                    customer_email=f"klant{customer}@example.nl",
                    amount_cents=amount,
                    status="paid",
                    method="direct_debit",
                    twikey_transaction_id=f"TX{i:08d}",
                    paid_at=now,
                    version=3,
                    updated_at=now,
                ),
                tenant_id=tenant,
            )
            for i, (number, customer, amount) in enumerate(invoices)
        ]
        # Confirms awaited 500 at a time, not one by one.
        for first in range(0, len(envelopes), 500):
            await asyncio.gather(*(broker.publish(e) for e in envelopes[first : first + 500]))
        await broker.close()

    asyncio.run(go())


async def count_status(engine: Any, status: str) -> int:
    async with engine.connect() as conn:
        return int(
            (await conn.execute(sa.text("SELECT count(*) FROM bookings WHERE status = :s"), {"s": status})).scalar()
            or 0
        )


def prepare(base: str, count: int, budget: int, customers: int) -> tuple[list[tuple[str, str, int]], str]:
    """Budget, seed data and a refresh token, through the sandbox's control API."""
    with httpx.Client(base_url=base, timeout=60) as sandbox:
        sandbox.patch("/_sandbox/config", json={"limits": {"per_client_org_certified": budget}}).raise_for_status()
        t0 = time.monotonic()
        invoices = seed(sandbox, count, customers)
        print(f"seeded {count} invoices for {customers} customers in {time.monotonic() - t0:.1f} s", flush=True)
        reply = sandbox.post("/_sandbox/tokens", json={"client_id": "koppel-sandbox", "organisation": "KOPPEL"})
        return invoices, str(reply.json()["refresh_token"])


async def run(count: int, budget: int, customers: int) -> dict[str, Any]:
    port = free_port()
    sandbox_proc = start_sandbox(port)
    base = f"http://127.0.0.1:{port}"
    db_url = f"{PG}/bench_twinfield_{uuid.uuid4().hex[:8]}"
    prefix = f"bench_tw_{uuid.uuid4().hex[:6]}."
    try:
        invoices, refresh_token = await asyncio.to_thread(prepare, base, count, budget, customers)
        async with httpx.AsyncClient(base_url=base, timeout=60) as sandbox:
            await ensure_database(db_url)
            settings = Settings(
                environment="test",
                database_url=db_url,
                amqp_url=AMQP,
                exchange=f"{prefix}events",
                queue_prefix=prefix,
                queue_type="classic",
                queue_expires_ms=120_000,
                token_public_keys=TEST_PUBLIC_KEYS,
                sync_token=issue_service_token(TEST_SIGNING_KEY, "bookkeeping"),
                encryption_keys="dGVzdC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY=",
                twinfield_login_url=base,
                twinfield_credits_per_minute=budget,
                booker_poll_seconds=0.2,
                relay_poll_seconds=0.5,
                log_level="WARNING",
            )
            configure_logging("bookkeeping-bench", "WARNING", True)
            await migrate(definition.migrations_dir, db_url)
            tenant = uuid.uuid4()
            await register(db_url, tenant)
            token = issue_token(TEST_SIGNING_KEY, tenant, ["operator"])
            headers = {"Authorization": f"Bearer {token}"}

            from asgi_lifespan import LifespanManager

            app = build_api(definition, settings)
            async with LifespanManager(app) as manager:
                transport = httpx.ASGITransport(app=manager.app)
                async with httpx.AsyncClient(transport=transport, base_url="http://svc") as api:
                    (
                        await api.put("/v1/twinfield/connection", json={"office": OFFICE}, headers=headers)
                    ).raise_for_status()
                    reply = await api.post(
                        "/v1/twinfield/connection/refresh-token", json={"refresh_token": refresh_token}, headers=headers
                    )
                    reply.raise_for_status()
            (await sandbox.post("/_sandbox/credits/reset")).raise_for_status()

            stop = asyncio.Event()
            worker = asyncio.create_task(run_worker(definition, settings, stop))
            await asyncio.sleep(1.0)
            engine = create_async_engine(db_url)
            try:
                # The burst comes from another process, as collection-svc would send it.
                start = time.monotonic()
                publisher = mp.get_context("spawn").Process(
                    target=publish_burst, args=(settings.exchange, str(tenant), invoices)
                )
                publisher.start()
                await asyncio.to_thread(publisher.join)
                published = time.monotonic() - start
                print(f"published {count} collection.paid in {published:.1f} s", flush=True)
                last_print = 0.0
                while True:
                    matched = await count_status(engine, "matched")
                    errors = await count_status(engine, "error")
                    elapsed = time.monotonic() - start
                    if elapsed - last_print >= 15:
                        print(f"  {elapsed:6.0f} s  matched {matched}  errors {errors}", flush=True)
                        last_print = elapsed
                    if matched + errors >= count:
                        break
                    if elapsed > 3600:
                        raise RuntimeError("bench did not finish within an hour")
                    await asyncio.sleep(0.5)
                elapsed = time.monotonic() - start
            finally:
                stop.set()
                await asyncio.wait_for(worker, 30)
                await engine.dispose()

            credits = (await sandbox.get("/_sandbox/credits")).json()
            org = next(c for c in credits["client_organisations"] if c["organisation"] == "KOPPEL")
            reply = await sandbox.get(f"/_sandbox/offices/{OFFICE}/transactions", params={"daybook": "MEMO"})
            memos = reply.json()
            memo_lines_matched = sum(
                1 for m in memos for ln in m["lines"] if ln["dim2"] and ln["matchstatus"] == "matched"
            )
            references = {ln["description"] for m in memos for ln in m["lines"] if ln["dim2"]}
    finally:
        sandbox_proc.terminate()
        sandbox_proc.wait(10)
        await drop_database(db_url)

    per_minute = matched / (elapsed / 60)
    bound = budget / CREDITS_PER_25 * 25
    return {
        "count": count,
        "customers": customers,
        "budget_credits_per_minute": budget,
        "matched": matched,
        "errors": errors,
        "elapsed_seconds": round(elapsed, 1),
        "bookings_per_minute": round(per_minute, 1),
        "bound_bookings_per_minute": round(bound, 1),
        "ratio_to_bound": round(per_minute / bound, 3),
        "credits": org["credits"],
        "credits_per_booking": round(org["credits"] / max(1, matched), 4),
        "credits_per_25_bookings": round(org["credits"] / max(1, matched) * 25, 2),
        "requests": org["requests"],
        "rejected_429": org["rejected_429"],
        "credits_by_operation": org["credits_by_operation"],
        "sandbox_memos": len(memos),
        "sandbox_memo_lines_matched": memo_lines_matched,
        "distinct_payment_references": len(references),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--budget", type=int, default=500, help="sandbox credits per client+organisation per minute")
    parser.add_argument("--customers", type=int, default=1000)
    args = parser.parse_args()
    os.environ.setdefault("KOPPEL_LOG_LEVEL", "WARNING")
    figures = asyncio.run(run(args.count, args.budget, args.customers))
    for key, value in figures.items():
        print(f"{key:32} {value}")
    notes = (
        "bookkeeping-svc worker in-process; Twinfield sandbox in its own process with fair-use limits on "
        f"(budget {args.budget} credits/min per client+organisation). Bound = budget/31*25 bookings/min "
        "(look-up 25 x 1 + post 3 + match 3 credits per 25). The service keeps 5 % of the budget as headroom and "
        "spreads the rest over the minute (bucket of 4 %, refilled with the other 96 %), so about 0.91 of the "
        "bound is the most it can reach without a 429."
    )
    path = write_result("twinfield_bookings", figures, notes)
    print(f"written {path}")


if __name__ == "__main__":
    main()
