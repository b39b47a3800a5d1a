"""The chaos drill: N paid collections while processes die and the infrastructure restarts.

The whole system runs as ``koppel run`` starts it (its supervisor starts a killed process again,
as a container runtime would). While the payments flow, a fault script SIGKILLs service
processes at random moments, restarts RabbitMQ and restarts PostgreSQL, and both sandboxes
inject 5xx answers, timeouts after the write and 429s; the ERP's endpoint fails now and then.
At the end the drill checks the outside world's own records, not Koppel's:

- the Twinfield sandbox holds exactly one MEMO per payment, each sales invoice matched once;
- the Twikey sandbox holds exactly one collection per invoice and one mandate per customer,
  although each mandate request was sent three times at once and invites time out after Twikey
  created the mandate;
- pay links and direct debits (numbered separately at Twikey, so their ids collide) are each
  booked once;
- the ERP's endpoint received every event of the tenant's event feed at least once;
- no dead letter is left in any service;
- reconciliation (Twikey's record vs Koppel's bookings vs Twinfield's) finds no difference.

After each fault it records how long until the system was back (every API ready, every work
queue consumed again) and until the outbox had published everything committed before the fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx

from koppel_cli.demo import DEMO_TWIKEY_KEY, TWINFIELD_OFFICE
from koppel_cli.localrun import SERVICES
from koppel_testkit.launch import System, running_system
from koppel_testkit.workload import (
    ErpReceiver,
    Payment,
    booked_invoice_numbers,
    matched_invoice_numbers,
    pay,
    prepare_paylinks,
    prepare_payments,
    reconcile,
    register_erp_endpoint,
    twikey_collections,
    twikey_mandates_per_customer,
)

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
PG = "postgresql://postgres@127.0.0.1:5432"

# Timers shortened so that a drill of a few minutes sees every recovery path: lost webhooks are
# made up by the safety-net drain, a killed notify worker's claimed deliveries come back after the
# lease, and failed ERP deliveries are retried soon.
CHAOS_ENV = {
    # A message whose handler failed (the database was restarting) is retried within a minute,
    # not after the production ladder's ten minutes.
    "KOPPEL_RETRY_DELAYS_MS": "[1000, 5000, 15000, 30000]",
    "KOPPEL_SYNC_SAFETY_NET_DRAIN_SECONDS": "10",
    "KOPPEL_NOTIFY_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
    "KOPPEL_NOTIFY_DELIVERY_LEASE_SECONDS": "20",
    "KOPPEL_NOTIFY_DELIVERY_TIMEOUT_SECONDS": "5",
    "KOPPEL_NOTIFY_DELIVERY_SCHEDULE_SECONDS": "[2, 5, 10, 20, 30, 60, 60, 60]",
    "KOPPEL_BOOKKEEPING_TRANSIENT_BACKOFF_SECONDS": "2",
    # Below the sandbox's held answer, so a held transaction create is a timeout after the write.
    "KOPPEL_SYNC_TWIKEY_TIMEOUT_SECONDS": "2",
}

# What the sandboxes do wrong, at these rates, for the whole drill.
# (Twikey's paths: the feeds are GET mandate / transaction, collections POST transaction[/bulk].)
TWIKEY_FAULTS = [
    {
        "kind": "timeout",
        "path": "transaction*",
        "method": "POST",
        "rate": 0.05,
        "delay_seconds": 3,
        "after_write": True,
    },
    {"kind": "error", "path": "transaction*", "rate": 0.03, "status": 503},
    # Twikey creates the mandate, its answer is lost: Koppel must look it up, not invite again.
    {"kind": "timeout", "path": "invite", "method": "POST", "rate": 0.2, "delay_seconds": 3, "after_write": True},
    {"kind": "error", "path": "mandate*", "rate": 0.03, "status": 502},
    {"kind": "rate_limit", "path": "transaction*", "rate": 0.02, "retry_after": 1},
    {"kind": "drop_webhook", "path": "*", "rate": 0.05},
]
TWINFIELD_FAULTS = [
    {"operation": "*", "kind": "error", "rate": 0.03, "status": 500},
    {"operation": "transactions", "kind": "timeout", "when": "after", "rate": 0.05, "delay_seconds": 2},
    {"operation": "*", "kind": "rate_limit", "rate": 0.02, "retry_after": 1},
]
KILLABLE = [f"{name}-{role}" for name in SERVICES for role in ("api", "worker")]


@dataclass
class FaultRecord:
    fault: str
    at: float
    back_after_s: float | None = None
    outbox_drained_after_s: float | None = None
    detail: str = ""


@dataclass
class ChaosReport:
    payments: int
    faults: list[FaultRecord] = field(default_factory=list)
    seconds_to_all_booked: float | None = None
    memos: Counter[str] = field(default_factory=Counter)
    matches: Counter[str] = field(default_factory=Counter)
    collections: Counter[str] = field(default_factory=Counter)
    mandates_per_customer: Counter[str] = field(default_factory=Counter)
    paylinks: int = 0
    reconciliation_differences: list[dict[str, Any]] = field(default_factory=list)
    feed_events: int = 0
    events_not_delivered: list[str] = field(default_factory=list)
    dead_letters: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    booking_errors: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        backs = [f.back_after_s for f in self.faults if f.back_after_s is not None]
        drains = [f.outbox_drained_after_s for f in self.faults if f.outbox_drained_after_s is not None]
        return {
            "payments": self.payments,
            "faults": len(self.faults),
            "seconds_to_all_booked": self.seconds_to_all_booked,
            "memos_in_twinfield": sum(self.memos.values()),
            "invoices_booked_twice": sum(1 for c in self.memos.values() if c > 1),
            "invoices_matched_twice": sum(1 for c in self.matches.values() if c > 1),
            "collections_at_twikey": sum(self.collections.values()),
            "invoices_collected_twice": sum(1 for c in self.collections.values() if c > 1),
            "paid_by_paylink": self.paylinks,
            "customers_with_several_mandates_at_twikey": sum(1 for c in self.mandates_per_customer.values() if c > 1),
            "reconciliation_differences": len(self.reconciliation_differences),
            "feed_events": self.feed_events,
            "events_not_delivered_to_erp": len(self.events_not_delivered),
            "dead_letters": sum(len(v) for v in self.dead_letters.values()),
            "max_back_after_s": max(backs, default=None),
            "max_outbox_drained_after_s": max(drains, default=None),
            "fault_log": [asdict(f) for f in self.faults],
            "problems": self.problems,
        }


def plan_faults(rng: random.Random, kills: int, infrastructure: bool) -> list[str]:
    faults = [f"kill {rng.choice(KILLABLE)}" for _ in range(kills)]
    if infrastructure:
        faults += ["restart rabbitmq", "restart postgresql"]
    rng.shuffle(faults)
    return faults


class Probe:
    """Looks at the running system from outside: readiness, consumers, outboxes."""

    def __init__(self, system: System, work_queues: list[str]) -> None:
        self.system = system
        self.work_queues = work_queues
        self.prefix = system.plan.prefix

    async def apis_ready(self) -> bool:
        async with httpx.AsyncClient(timeout=2) as http:
            for url in self.system.plan.service_urls().values():
                try:
                    if (await http.get(f"{url}/readyz")).status_code != 200:
                        return False
                except httpx.HTTPError:
                    return False
        return True

    async def queues(self) -> dict[str, tuple[int, int]]:
        """queue → (messages, consumers), through a passive declare on a fresh connection."""
        connection = await aio_pika.connect(AMQP, timeout=3)
        async with connection:
            found = {}
            for name in self.work_queues:
                channel = await connection.channel()
                declared = await channel.declare_queue(name, passive=True)
                result = declared.declaration_result
                found[name] = (result.message_count or 0, result.consumer_count or 0)
                await channel.close()
            return found

    async def consumers_back(self) -> bool:
        try:
            return all(consumers > 0 for _, consumers in (await self.queues()).values())
        except Exception:  # the broker may still be down: not back yet
            return False

    async def unsent_before(self, moment: float) -> int:
        """Outbox rows committed before ``moment`` and not yet published, over every service."""
        total = 0
        for name in SERVICES:
            conn = await asyncpg.connect(f"{PG}/{self.prefix}koppel_{name}", timeout=3)
            try:
                total += await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE sent_at IS NULL AND created_at <= to_timestamp($1)", moment
                )
            finally:
                await conn.close()
        return total

    async def outbox_drained(self, moment: float) -> bool:
        try:
            return await self.unsent_before(moment) == 0
        except Exception:  # PostgreSQL may still be down
            return False


async def _until(check: Callable[[], Any], since: float, within: float) -> float | None:
    while time.time() - since < within:
        if await check():
            return round(time.time() - since, 2)
        await asyncio.sleep(0.2)
    return None


def _pids(system: System) -> dict[str, int]:
    return dict(json.loads((system.log_dir / "pids.json").read_text()))


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=180)


def restart_rabbitmq() -> None:
    _run("rabbitmqctl", "stop_app")
    try:
        time.sleep(1)
    finally:  # never leave the broker stopped, whatever interrupts the drill
        _run("rabbitmqctl", "start_app")
    _run("rabbitmqctl", "await_startup")


def restart_postgresql() -> None:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    _run("pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast")


async def inject(fault: str, system: System) -> str:
    if fault.startswith("kill "):
        name = fault.removeprefix("kill ")
        pid = _pids(system)[name]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return f"pid {pid}"
    if fault == "restart rabbitmq":
        await asyncio.to_thread(restart_rabbitmq)
    elif fault == "restart postgresql":
        await asyncio.to_thread(restart_postgresql)
    return ""


async def run_faults(system: System, probe: Probe, faults: list[str], rng: random.Random, report: ChaosReport,
                     say: Callable[[str], None], pause: tuple[float, float] = (2.0, 6.0)) -> None:  # fmt: skip
    for fault in faults:
        await asyncio.sleep(rng.uniform(*pause))
        at = time.time()
        detail = await inject(fault, system)
        record = FaultRecord(fault=fault, at=round(at, 3), detail=detail)
        # A killed process is noticed by the supervisor within half a second; give it that before
        # asking, or a still-registered dead consumer would count as "back".
        await asyncio.sleep(0.6)
        record.back_after_s = await _until(
            lambda: _all(probe.apis_ready(), probe.consumers_back()), since=at, within=120
        )
        record.outbox_drained_after_s = await _until(functools.partial(probe.outbox_drained, at), since=at, within=120)
        say(f"  {fault:28} back after {record.back_after_s} s, outbox drained after {record.outbox_drained_after_s} s")
        report.faults.append(record)


async def _all(*checks: Any) -> bool:
    results = [await c for c in checks]
    return all(results)


async def _sandbox_faults(system: System, on: bool) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        twikey, twinfield = system.urls.twikey_sandbox, system.urls.twinfield_sandbox
        (await http.delete(f"{twikey}/_sandbox/faults")).raise_for_status()
        (await http.delete(f"{twinfield}/_sandbox/faults")).raise_for_status()
        if not on:
            return
        for rule in TWIKEY_FAULTS:
            (await http.post(f"{twikey}/_sandbox/faults", json={**rule, "seed": 7})).raise_for_status()
        for rule in TWINFIELD_FAULTS:
            (await http.post(f"{twinfield}/_sandbox/faults", json=rule)).raise_for_status()


def _work_queues(prefix: str) -> list[str]:
    out = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "--formatter", "json", "name", "consumers"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    return sorted(q["name"] for q in json.loads(out) if q["name"].startswith(prefix) and q["consumers"] > 0)


async def _feed_event_ids(system: System) -> list[str]:
    ids: list[str] = []
    auth = {"Authorization": f"Bearer {system.token}"}
    async with httpx.AsyncClient(timeout=30) as http:
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["after"] = cursor
            page = (await http.get(f"{system.urls.gateway}/v1/events", headers=auth, params=params)).json()
            ids += [str(e["id"]) for e in page["data"]]
            if not page["has_more"]:
                return ids
            cursor = page["next_cursor"]


async def _dead_letters(system: System) -> dict[str, list[dict[str, Any]]]:
    from koppel_shared.messaging.broker import Broker
    from koppel_shared.messaging.deadletters import list_dead_letters

    broker = Broker(AMQP, f"{system.plan.prefix}koppel.events")
    await broker.connect()
    try:
        found = {}
        for name in SERVICES:
            letters = await list_dead_letters(broker, name, system.plan.prefix, limit=100)
            if letters:
                found[name] = [d.as_dict() for d in letters]
        return found
    finally:
        await broker.close()


async def _booking_errors(system: System) -> list[dict[str, Any]]:
    auth = {"Authorization": f"Bearer {system.token}"}
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.get(f"{system.urls.gateway}/v1/bookings", headers=auth, params={"status": "error"})
        return list(answer.json().get("items", []))


async def wait_settled(system: System, probe: Probe, payments: list[Payment], receiver: ErpReceiver,
                       within: float) -> bool:  # fmt: skip
    """Every payment booked and matched in Twinfield, every event delivered, every queue and outbox empty."""
    numbers = {p.invoice_number for p in payments}
    deadline = time.time() + within
    while time.time() < deadline:
        memos = await asyncio.to_thread(booked_invoice_numbers, system.urls.twinfield_sandbox, TWINFIELD_OFFICE)
        # Matched too: a MEMO whose write answer was lost is found by the look-up and matched
        # only then, minutes later when a restart fell in between.
        matched = await asyncio.to_thread(matched_invoice_numbers, system.urls.twinfield_sandbox, TWINFIELD_OFFICE)
        if numbers <= set(memos) and numbers <= set(matched):
            delivered = receiver.event_ids()
            feed = await _feed_event_ids(system)
            queues = await probe.queues()
            if (
                set(feed) <= delivered
                and await probe.unsent_before(time.time()) == 0
                and all(messages == 0 for messages, _ in queues.values())
            ):
                return True
        await asyncio.sleep(2)
    return False


async def drill(system: System, payments_n: int, kills: int, infrastructure: bool, seed: int,
                say: Callable[[str], None], pause: tuple[float, float]) -> ChaosReport:  # fmt: skip
    rng = random.Random(seed)
    report = ChaosReport(payments=payments_n)
    with ErpReceiver(fail_rate=0.05) as receiver:
        await asyncio.to_thread(register_erp_endpoint, system.urls.gateway, system.token, receiver)
        await _sandbox_faults(system, on=True)
        say(f"preparing {payments_n} collections (sandbox faults on) ...")
        paylinks = max(1, payments_n // 20)
        payments = await asyncio.to_thread(
            functools.partial(prepare_payments, duplicate_requests=3),
            system.urls, system.token, payments_n - paylinks, 20, 12_100, f"CH{seed}-",
        )  # fmt: skip
        # Aligned ids: the pay links' Twikey ids collide with the transactions' ones.
        async with httpx.AsyncClient(timeout=10) as http:
            (await http.post(f"{system.urls.twikey_sandbox}/_sandbox/ids/align")).raise_for_status()
        payments += await asyncio.to_thread(
            prepare_paylinks, system.urls, system.token, paylinks, 12_100, f"CH{seed}L-"
        )
        report.paylinks = paylinks
        probe = Probe(system, await asyncio.to_thread(_work_queues, system.plan.prefix))
        faults = plan_faults(rng, kills, infrastructure)
        say(f"paying them while: {', '.join(faults)}")
        started = time.time()
        chaos = asyncio.create_task(run_faults(system, probe, faults, rng, report, say, pause))
        await asyncio.to_thread(pay, system.urls.twikey_sandbox, payments, 100.0)
        await chaos
        await _sandbox_faults(system, on=False)
        say("faults over; waiting until everything has settled ...")
        settled = await wait_settled(system, probe, payments, receiver, within=300)
        report.seconds_to_all_booked = round(time.time() - started, 1)
        if not settled:
            report.problems.append("not settled within 300 s after the last fault")
        numbers = {p.invoice_number for p in payments}
        twinfield = system.urls.twinfield_sandbox

        async def ours(count: Callable[..., Counter[str]], *args: str) -> Counter[str]:
            """The sandbox's own count per invoice number, for this drill's invoices only."""
            counted = await asyncio.to_thread(count, *args)
            return Counter({number: n for number, n in counted.items() if number in numbers})

        report.memos = await ours(booked_invoice_numbers, twinfield, TWINFIELD_OFFICE)
        report.matches = await ours(matched_invoice_numbers, twinfield, TWINFIELD_OFFICE)
        report.collections = await ours(twikey_collections, system.urls.twikey_sandbox, DEMO_TWIKEY_KEY)
        collected = {p.invoice_number for p in payments if p.kind == "transaction"}  # pay links: the debtor pays
        report.collections = Counter({k: n for k, n in report.collections.items() if k in collected})
        report.mandates_per_customer = await asyncio.to_thread(
            twikey_mandates_per_customer, system.urls.twikey_sandbox, DEMO_TWIKEY_KEY, f"CH{seed}-"
        )
        feed = await _feed_event_ids(system)
        report.feed_events = len(feed)
        delivered = receiver.event_ids()
        report.events_not_delivered = [e for e in feed if e not in delivered]
        report.dead_letters = await _dead_letters(system)
        report.booking_errors = await _booking_errors(system)
        _, report.reconciliation_differences = await asyncio.to_thread(reconcile, system.urls.gateway, system.token)
        _judge(report, numbers, collected)
    return report


def _judge(report: ChaosReport, numbers: set[str], collected: set[str]) -> None:
    for what, counter, expected in (("MEMO bookings", report.memos, numbers), ("matches", report.matches, numbers),
                                    ("Twikey collections", report.collections, collected)):  # fmt: skip
        missing = sorted(expected - set(counter))
        twice = sorted(k for k, c in counter.items() if c > 1)
        if missing:
            report.problems.append(f"{len(missing)} invoices without {what}, e.g. {missing[:3]}")
        if twice:
            report.problems.append(f"{len(twice)} invoices with more than one of {what}, e.g. {twice[:3]}")
    several = sorted(c for c, n in report.mandates_per_customer.items() if n > 1)
    if several:
        report.problems.append(f"{len(several)} customers with several mandates at Twikey, e.g. {several[:3]}")
    if report.events_not_delivered:
        report.problems.append(f"{len(report.events_not_delivered)} events never reached the ERP endpoint")
    for service, letters in report.dead_letters.items():
        reasons = Counter(d.get("reason", "?") for d in letters)
        report.problems.append(f"{len(letters)} dead letters in {service}-svc: {dict(reasons)}")
    if report.reconciliation_differences:
        kinds = Counter(d["kind"] for d in report.reconciliation_differences)
        report.problems.append(
            f"reconciliation found {len(report.reconciliation_differences)} differences: {dict(kinds)}"
        )
    if report.booking_errors:
        report.problems.append(f"{len(report.booking_errors)} bookings in error")
    for fault in report.faults:
        if fault.back_after_s is None or fault.outbox_drained_after_s is None:
            report.problems.append(f"no recovery within 120 s after {fault.fault}")


def run_drill(tmp: Path, payments: int, kills: int, infrastructure: bool = True, seed: int = 1,
              say: Callable[[str], None] = print, pause: tuple[float, float] = (2.0, 6.0)) -> ChaosReport:  # fmt: skip
    """``pause``: seconds between one fault's recovery and the next fault (uniformly drawn)."""
    with running_system(tmp, env=CHAOS_ENV, name="chaos") as system:
        say(f"system up (logs in {system.log_dir})")
        return asyncio.run(drill(system, payments, kills, infrastructure, seed, say, pause))
