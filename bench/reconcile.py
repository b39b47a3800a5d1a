"""Benchmark: one reconciliation run over N paid items (default 100,000) at the Twikey sandbox
against the same N booked, matched payments in the Twinfield sandbox and in Koppel's bookings.

Setup, in bulk through the sandboxes' control APIs (and Twinfield's own ProcessXml, with the
sandbox's limits switched off while seeding): N transactions paid at Twikey (``/_sandbox/seed`` with
``paid``) over 3,000 signed mandates, N customers' sales invoices and N MEMOs matched to them in
Twinfield, N ``matched`` bookings and the 3,000 mandate numbers (as ``mandate.*`` events leave
them) in bookkeeping-svc's database. Then the Twinfield limits are put back to
Twinfield's own (500 credits a minute per organisation, 1,000 per client), its credit counters
reset, and one run is started through bookkeeping-svc's API.

Measured: the CPU seconds of Koppel's processes (sync-svc's API and bookkeeping-svc's API and
worker, all in this process; the sandboxes run in processes of their own and are not counted),
the wall time, the Twikey feed entries read (transactions and mandate messages), the Twinfield
credits the run used (its own count and the sandbox's) against the
budget, and the differences found (0 expected). Target: ≤ 120 s of Koppel CPU.

Usage: ``uv run python bench/reconcile.py [--count 100000]``
"""

from __future__ import annotations

import argparse
import asyncio
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
from sqlalchemy.ext.asyncio import create_async_engine
from twinfield_bookings import AMQP, OFFICE, PG, free_port, start_sandbox

from bookkeeping_svc.adapters.orm import bookings, koppel_mandates
from bookkeeping_svc.adapters.twinfield import documents
from bookkeeping_svc.bootstrap import definition
from bookkeeping_svc.domain.booking import Accounts, Payment, payment_memo
from bookkeeping_svc.settings import Settings
from koppel_shared.auth import issue_service_token, issue_token
from koppel_shared.logging import configure_logging
from koppel_shared.migrations import drop_database, ensure_database, migrate
from koppel_shared.service import build_api
from koppel_shared.testing.fixtures import TEST_PUBLIC_KEYS, TEST_SIGNING_KEY
from koppel_shared.testing.service_checks import worker
from koppel_shared.testing.serving import Served
from sync_svc.bootstrap import definition as sync_definition
from sync_svc.settings import Settings as SyncSettings

API_KEY = "bench-reconcile-key"
AMOUNT_CENTS = 12100
PER_REQUEST = 500  # MEMOs / match sets per seeding request
KEYS = "dGVzdC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY="
CUSTOMERS = 1000
MANDATES = 3000


def start_twikey(port: int) -> subprocess.Popen[bytes]:
    return start_server(
        ["twikey_sandbox", "--port", str(port), "--api-key", API_KEY],
        f"http://127.0.0.1:{port}/_sandbox/health",
        "Twikey sandbox",
    )


def _soap(http: httpx.Client, tokens: dict[str, Any], request_xml: str) -> Any:
    body = documents.envelope(tokens["access_token"], OFFICE, request_xml)
    reply = http.post(
        f"{tokens['cluster_url']}/webservices/processxml.asmx",
        content=body,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": documents.SOAP_ACTION},
        timeout=600,
    )
    root = documents.parse_envelope(reply.content)
    assert not isinstance(root, documents.Fault) and documents.ok(root), reply.text[:500]
    return root


def seed_twikey(base: str, count: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """N transactions paid at Twikey, spread over ``MANDATES`` signed mandates; Twikey's feed page
    of 100."""
    with httpx.Client(base_url=f"{base}/_sandbox", timeout=600) as tk:
        tk.patch(f"/creditors/{API_KEY}", json={"feed_page_size": 100}).raise_for_status()
        amount = f"{AMOUNT_CENTS / 100:.2f}"
        seeded = tk.post("/seed", json={"mandates": MANDATES, "transactions": count, "amount": amount, "paid": True})
        seeded.raise_for_status()
        return seeded.json(), tk.get(f"/creditors/{API_KEY}").json()


def seed_twinfield(base: str, tx_ids: list[int]) -> tuple[list[dict[str, Any]], str]:
    """Customers, one sales invoice and one matched MEMO per paid item; the rows for Koppel's
    bookings and a refresh token."""
    today = datetime.now(UTC).date()
    with httpx.Client(base_url=base, timeout=600) as tw:
        tw.patch("/_sandbox/config", json={"limits": {"enabled": False}}).raise_for_status()
        codes = [str(20000 + i) for i in range(CUSTOMERS)]
        customers = [{"code": c, "name": f"Klant {c}", "email": f"k{c}@example.nl"} for c in codes]
        tw.post(f"/_sandbox/offices/{OFFICE}/customers", json={"customers": customers}).raise_for_status()
        rows: list[dict[str, Any]] = []
        for start in range(0, len(tx_ids), 2000):
            chunk = [(tid, f"R{tid:09d}", codes[tid % CUSTOMERS]) for tid in tx_ids[start : start + 2000]]
            body = {
                "invoices": [{"customer": c, "invoice_number": n, "amount_cents": AMOUNT_CENTS} for _, n, c in chunk]
            }
            created = tw.post(f"/_sandbox/offices/{OFFICE}/invoices", json=body).json()["created"]
            rows += [
                {"tid": tid, "invoice": n, "customer": c, "sales_number": str(made["number"])}
                for (tid, n, c), made in zip(chunk, created, strict=True)
            ]
        tokens = tw.post("/_sandbox/tokens", json={"client_id": "koppel-sandbox", "organisation": "KOPPEL"}).json()
        for start in range(0, len(rows), PER_REQUEST):
            batch = rows[start : start + PER_REQUEST]
            memos = [
                payment_memo(
                    Payment(f"TX{r['tid']}", r["invoice"], r["customer"], None, AMOUNT_CENTS, "direct_debit", today),
                    r["customer"],
                    Accounts(),
                )
                for r in batch
            ]
            posted = documents.parse_transactions(_soap(tw, tokens, documents.transactions(OFFICE, memos)))
            for r, p in zip(batch, posted, strict=True):
                r["memo_number"] = p.number
            sets = [
                (
                    documents.MatchLine("VRK", r["sales_number"], 1),
                    documents.MatchLine("MEMO", str(r["memo_number"]), 2),
                )
                for r in batch
            ]
            _soap(tw, tokens, documents.match(OFFICE, sets, today))
        tw.patch("/_sandbox/config", json={"limits": {"enabled": True}}).raise_for_status()
        tw.post("/_sandbox/credits/reset").raise_for_status()
        return rows, str(tokens["refresh_token"])


def mandate_numbers(seeded: dict[str, Any]) -> list[str]:
    """The seeded mandates' numbers: the sandbox numbers them prefix + 7 digits, in a row."""
    first, last = str(seeded["first_mandate"]), str(seeded["last_mandate"])
    prefix, start = first[:-7], int(first[-7:])
    numbers = [f"{prefix}{n:07d}" for n in range(start, start + int(seeded["mandates"]))]
    assert numbers[-1] == last, (first, last)
    return numbers


async def seed_bookings(db_url: str, tenant: uuid.UUID, rows: list[dict[str, Any]], mandates: list[str]) -> None:
    today = datetime.now(UTC).date()
    engine = create_async_engine(db_url)
    values = [
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant,
            "collection_id": f"SEED-{r['tid']}",
            "payment_kind": "transaction",
            "twikey_id": str(r["tid"]),
            "twikey_transaction_id": str(r["tid"]),
            "reference": f"TX{r['tid']}",
            "invoice_number": r["invoice"],
            "customer_number": r["customer"],
            "amount_cents": AMOUNT_CENTS,
            "method": "direct_debit",
            "paid_on": today,
            "status": "matched",
            "office": OFFICE,
            "customer_code": r["customer"],
            "memo_number": r["memo_number"],
            "memo_line": 2,
            "sales_daybook": "VRK",
            "sales_number": r["sales_number"],
            "sales_line": 1,
        }
        for r in rows
    ]
    known = [
        {"tenant_id": tenant, "mandate_number": n, "mandate_id": str(uuid.uuid4()), "status": "active", "version": 2}
        for n in mandates
    ]
    async with engine.begin() as conn:
        for start in range(0, len(values), 5000):
            await conn.execute(sa.insert(bookings), values[start : start + 5000])
        await conn.execute(sa.insert(koppel_mandates), known)
    await engine.dispose()


async def run(count: int) -> dict[str, Any]:
    tw_port, tk_port, sync_port = free_port(), free_port(), free_port()
    tw_proc, tk_proc = start_sandbox(tw_port), start_twikey(tk_port)
    tw_base, tk_base = f"http://127.0.0.1:{tw_port}", f"http://127.0.0.1:{tk_port}"
    suffix = uuid.uuid4().hex[:8]
    db_url, sync_db_url = f"{PG}/bench_reconcile_{suffix}", f"{PG}/bench_reconcile_sync_{suffix}"
    prefix = f"bench_rc_{suffix}."
    common: dict[str, Any] = {
        "environment": "test",
        "amqp_url": AMQP,
        "exchange": f"{prefix}events",
        "queue_prefix": prefix,
        "queue_type": "classic",
        "queue_expires_ms": 120_000,
        "token_public_keys": TEST_PUBLIC_KEYS,
        "sync_token": issue_service_token(TEST_SIGNING_KEY, "bookkeeping"),
        "encryption_keys": KEYS,
        "log_level": "WARNING",
        "known_tenants_only": False,
    }
    try:
        seeded, creditor = await asyncio.to_thread(seed_twikey, tk_base, count)
        first = int(seeded["first_transaction"])
        tx_ids = list(range(first, first + count))
        t0 = time.monotonic()
        rows, refresh_token = await asyncio.to_thread(seed_twinfield, tw_base, tx_ids)
        print(f"seeded {count} invoices and matched MEMOs in {time.monotonic() - t0:.0f} s", flush=True)
        for url in (db_url, sync_db_url):
            await ensure_database(url)
        await migrate(definition.migrations_dir, db_url)
        await migrate(sync_definition.migrations_dir, sync_db_url)
        tenant = uuid.uuid4()
        await seed_bookings(db_url, tenant, rows, mandate_numbers(seeded))
        configure_logging("reconcile-bench", "WARNING", True)
        sync_settings = SyncSettings(
            database_url=sync_db_url, public_base_url=f"http://127.0.0.1:{sync_port}", **common
        )
        settings = Settings(
            database_url=db_url,
            twinfield_login_url=tw_base,
            sync_url=f"http://127.0.0.1:{sync_port}",
            reconcile_poll_seconds=0.2,
            reconcile_nightly=False,
            **common,
        )
        headers = {"Authorization": f"Bearer {issue_token(TEST_SIGNING_KEY, tenant, ['operator'])}"}
        with (
            Served(build_api(sync_definition, sync_settings), sync_port) as sync_api,
            Served(build_api(definition, settings)) as api_served,
        ):
            async with httpx.AsyncClient(base_url=sync_api.base, headers=headers, timeout=60) as sync:
                body = {
                    "api_key": API_KEY,
                    "base_url": f"{tk_base}/creditor",
                    "core_template_id": str(creditor["templates"]["CORE"]),
                    "b2b_template_id": str(creditor["templates"]["B2B"]),
                }
                (await sync.put("/v1/twikey/connection", json=body)).raise_for_status()
                (await sync.post("/v1/twikey/feeds/reset", json={"feed": "all"})).raise_for_status()
            async with httpx.AsyncClient(base_url=api_served.base, headers=headers, timeout=60) as api:
                (await api.put("/v1/twinfield/connection", json={"office": OFFICE})).raise_for_status()
                reply = await api.post("/v1/twinfield/connection/refresh-token", json={"refresh_token": refresh_token})
                reply.raise_for_status()
                async with worker(definition, settings):
                    cpu0, wall0 = time.process_time(), time.monotonic()
                    run_row = (await api.post("/v1/reconciliation/runs", json={})).json()
                    shown = ""
                    while run_row["status"] in ("requested", "running"):
                        await asyncio.sleep(0.5)
                        run_row = (await api.get(f"/v1/reconciliation/runs/{run_row['id']}")).json()
                        line = f"  {time.monotonic() - wall0:6.0f} s  {run_row['progress']}"
                        if line[10:] != shown[10:]:
                            print(line, flush=True)
                            shown = line
                    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        async with httpx.AsyncClient(base_url=tw_base, timeout=60) as tw:
            credits = (await tw.get("/_sandbox/credits")).json()
        org = next(c for c in credits["client_organisations"] if c["organisation"] == "KOPPEL")
    finally:
        for proc in (tw_proc, tk_proc):
            proc.terminate()
            proc.wait(10)
        for url in (db_url, sync_db_url):
            await drop_database(url)
    assert run_row["status"] == "done", run_row
    progress = run_row["progress"]
    return {
        "paid_items": count,
        "koppel_cpu_seconds": round(cpu, 1),
        "target_cpu_seconds": 120,
        "wall_seconds": round(wall, 1),
        "differences": run_row["differences"],
        "twikey_feed_entries_read": progress["twikey_transactions"] + progress["twikey_paylinks"],
        "twikey_mandate_messages_read": progress["twikey_mandates"],
        "twinfield_lines_read": progress["twinfield_lines"],
        "twinfield_credits_run": progress["twinfield_credits"],
        "twinfield_credits_sandbox": org["credits"],
        "twinfield_budget_per_minute": 500,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    figures = asyncio.run(run(args.count))
    print(figures)
    notes = (
        f"One reconciliation run: Twikey's transaction feed and mandate feed ({MANDATES:,} signed mandates) "
        "replayed from the start through sync-svc, Koppel's bookings and mandates, and Twinfield browse 100 "
        "(the MEMO daybook a period at a time, the matched sales lines by ranges of 2,000 transaction numbers). "
        "Koppel CPU = process CPU of sync-svc's API and bookkeeping-svc's API and worker (one process); "
        "the sandboxes are not counted."
    )
    write_result("reconcile", figures, notes)


if __name__ == "__main__":
    main()
