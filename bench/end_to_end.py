"""Benchmark: end-to-end latency from Twikey's PAID to the booking matched in Twinfield and the ERP
notified, at a sustained payment rate, and the memory (RSS) of every process idle and under load.

The issue's targets: p50 ≤ 500 ms and p99 ≤ 2 s at 50 payments/s sustained for 5 minutes (today's
connectors poll hourly or daily); ≤ 150 MB RSS per service.

Setup: the whole system through ``koppel run`` (``launch.running_system``: every service's API
and worker, the nginx gateway, both sandboxes, the console) on its own ports, databases and
broker names. ``--tenants`` tenants (default 4), each with its own Twikey creditor (its webhooks
to ``{gateway}/webhooks/twikey/{tenant}``) and its own Twinfield organisation and office, wired as
an operator would; each tenant's ERP is an ``ErpReceiver`` registered as its webhook endpoint.
Real load of 50 payments/s comes from many tenants, and it has to: Twinfield's fair-use budget
(500 credits per minute per client + organisation, 7 credits per 25 bookings) caps one
organisation at ~30 bookings/s. Per tenant ``rate × seconds / tenants`` invoices are prepared up
to the collection at Twikey (mandates signed, sales invoices seeded in Twinfield, invoices posted
through the gateway).

Then, idle RSS is sampled; the payments are paid at the Twikey sandbox on a fixed schedule at
``--rate`` per second, tenants interleaved, while RSS is sampled every ``--sample-every`` seconds;
and the clock runs until every payment is matched in Twinfield and the ERP has ``booking.booked``.

Per payment: PAID accepted by the sandbox (its webhook is on its way) → the match applied in the
Twinfield sandbox (its own ``matched_at``, wall clock) and → ``booking.booked`` received by the
ERP (receiver clock; both on this machine). Also PAID → ``collection.paid`` at the ERP.

Usage: ``uv run python bench/end_to_end.py [--rate 50] [--seconds 300] [--tenants 4]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from common import percentile, write_result

from koppel_shared.settings import IssuerSettings
from koppel_testkit.launch import System, running_system
from koppel_testkit.workload import (
    ErpReceiver,
    Payment,
    Tenant,
    booked_invoice_numbers,
    matched_times,
    new_tenant,
    pay,
    prepare_payments,
    register_erp_endpoint,
)

SERVICES = ("mandate", "collection", "sync", "bookkeeping", "notify")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# ------------------------------------------------------------------------------------------ memory
def _rss_kb(pid: int) -> int:
    """VmRSS of a process and its descendants (a server that forks counts whole)."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
                break
        for task in Path(f"/proc/{pid}/task").iterdir():
            children = (task / "children").read_text().split()
            total += sum(_rss_kb(int(c)) for c in children)
    except (OSError, ValueError):
        pass
    return total


def rss_sample(log_dir: Path) -> dict[str, float]:
    """MB per process named in ``pids.json`` (kept current by the supervisor)."""
    pids = json.loads((log_dir / "pids.json").read_text())
    return {name: _rss_kb(int(pid)) / 1024 for name, pid in pids.items()}


def per_service(sample: dict[str, float]) -> dict[str, float]:
    """api + worker summed per service; other processes as they are."""
    out: dict[str, float] = defaultdict(float)
    for name, mb in sample.items():
        service = name.rsplit("-", 1)[0] if name.endswith(("-api", "-worker")) else name
        out[service] += mb
    return dict(out)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants, in seconds."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += sum(_cpu_seconds(int(c)) for c in (task / "children").read_text().split())
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        pass
    return total


def cpu_sample(log_dir: Path) -> dict[str, float]:
    """CPU seconds so far of every process in ``pids.json``, of PostgreSQL and RabbitMQ (every
    process of theirs), and of this benchmark (the payer and the ERP receivers)."""
    pids = json.loads((log_dir / "pids.json").read_text())
    sample = {name: _cpu_seconds(int(pid)) for name, pid in pids.items()}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
        except OSError:
            continue
        owner = "postgresql" if comm.startswith("postgres") else "rabbitmq" if comm == "beam.smp" else None
        if owner:
            sample[owner] = sample.get(owner, 0.0) + _cpu_seconds(int(proc.name))
    times = os.times()
    sample["benchmark (payer, ERP receivers)"] = times.user + times.system
    return sample


class Sampler:
    """RSS of every process and the load average every ``every`` seconds, in a thread; CPU
    seconds of every process between start and end."""

    def __init__(self, log_dir: Path, every: float) -> None:
        self.log_dir, self.every = log_dir, every
        self.samples: list[dict[str, float]] = []
        self.loads: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_sample(self.log_dir))
            self.loads.append(os.getloadavg()[0])
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._cpu_start = cpu_sample(self.log_dir)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        end = cpu_sample(self.log_dir)
        # A process restarted in between would count from zero; it is not expected here.
        self.cpu_seconds = {k: round(max(0.0, v - self._cpu_start.get(k, 0.0)), 1) for k, v in end.items()}


def summarise_rss(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """name → {median, max} over the samples, per process and per service."""
    by_name: dict[str, list[float]] = defaultdict(list)
    for sample in samples:
        for name, mb in {**sample, **{f"{k} (service)": v for k, v in per_service(sample).items()}}.items():
            by_name[name].append(mb)
    return {
        name: {"median_mb": round(statistics.median(values), 1), "max_mb": round(max(values), 1)}
        for name, values in sorted(by_name.items())
    }


# ------------------------------------------------------------------------------------------ setup
def set_up_tenants(system: System, count: int) -> list[Tenant]:
    secret = IssuerSettings().signing_key
    services = system.plan.service_urls()
    return [new_tenant(system.urls, services, secret, f"t{i}") for i in range(count)]


def prepare_all(system: System, tenants: list[Tenant], per_tenant: int, mandates: int) -> dict[str, list[Payment]]:
    def one(tenant: Tenant) -> list[Payment]:
        return prepare_payments(
            system.urls,
            tenant.token,
            per_tenant,
            mandates,
            prefix=f"{tenant.name.upper()}-",
            office=tenant.office,
            concurrency=max(2, 8 // len(tenants)),
            allow_missing=True,
            say=lambda text: say(f"{tenant.name}: {text}"),
        )

    with ThreadPoolExecutor(len(tenants)) as pool:
        return dict(zip((t.name for t in tenants), pool.map(one, tenants), strict=True))


def settle(receivers: dict[str, ErpReceiver], at_least: float, quiet: float = 15.0, within: float = 900.0) -> float:
    """Wait until the ERPs have heard everything about the setup (no delivery for ``quiet``
    seconds), so the measurement does not start behind a backlog of older notifications."""
    started = time.monotonic()
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() - started < within:
        count = sum(len(r.received) for r in receivers.values())
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        if time.monotonic() - started >= at_least and time.monotonic() - last_change >= quiet:
            break
        time.sleep(1.0)
    return time.monotonic() - started


def interleave(groups: list[list[Payment]]) -> list[Payment]:
    out: list[Payment] = []
    for i in range(max(len(g) for g in groups)):
        out += [g[i] for g in groups if i < len(g)]
    return out


def wait_until_done(
    system: System,
    tenants: list[Tenant],
    payments: dict[str, list[Payment]],
    receivers: dict[str, ErpReceiver],
    within: float,
) -> tuple[dict[str, float], bool]:
    """Until every payment is matched in Twinfield and its ERP has booking.booked. The ERP side is
    watched (it is local and cheap); booking.booked follows the match, so Twinfield's records are
    read once everything is notified (or at the deadline)."""
    wanted = {t.name: {p.invoice_number for p in payments[t.name]} for t in tenants}
    total = sum(len(v) for v in wanted.values())
    deadline = time.monotonic() + within
    last = 0.0
    while True:
        notified = sum(1 for t in tenants for n in wanted[t.name] if receivers[t.name].first_seen("booking.booked", n))
        if notified == total or time.monotonic() > deadline:
            break
        if time.monotonic() - last > 10:
            say(f"  ERP notified of {notified}/{total} bookings")
            last = time.monotonic()
        time.sleep(1.0)
    matched: dict[str, float] = {}
    for t in tenants:
        times = matched_times(system.urls.twinfield_sandbox, t.office)
        matched.update({n: at for n, at in times.items() if n in wanted[t.name]})
    return matched, len(matched) == total and notified == total


def latency_figures(values_s: list[float], expected: int) -> dict[str, Any]:
    ms = [v * 1000 for v in values_s]
    return {
        "count": len(ms),
        "missing": expected - len(ms),
        "p50_ms": round(percentile(ms, 50), 1),
        "p95_ms": round(percentile(ms, 95), 1),
        "p99_ms": round(percentile(ms, 99), 1),
        "max_ms": round(max(ms), 1) if ms else float("nan"),
    }


def twinfield_credits(system: System) -> dict[str, Any]:
    report = httpx.get(f"{system.urls.twinfield_sandbox}/_sandbox/credits", timeout=30).json()
    orgs = report.get("client_organisations", [])
    return {
        "credits": sum(o["credits"] for o in orgs),
        "requests": sum(o["requests"] for o in orgs),
        "rejected_429": sum(o["rejected_429"] for o in orgs),
    }


def credit_rates(credits: dict[str, Any], seconds: float, bookings: int) -> dict[str, Any]:
    """What the run spent against Twinfield's budgets: per minute for the one Koppel client (all
    tenants together; Twinfield allows 1000/min per client and per IP) and per 25 bookings."""
    return {
        **credits,
        "client_credits_per_minute": round(credits["credits"] / (seconds / 60), 1) if seconds else 0.0,
        "credits_per_25_bookings": round(credits["credits"] / max(1, bookings) * 25, 2),
    }


# -------------------------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    n = int(args.rate * args.seconds)
    per_tenant = -(-n // args.tenants)
    env = {
        "KOPPEL_NOTIFY_WEBHOOK_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
    }
    loads: dict[str, list[float]] = {"start": list(os.getloadavg())}
    # Kept afterwards: the processes' logs are worth a look when a figure is off.
    tmp = tempfile.mkdtemp(prefix="koppel-e2e-bench-")
    with running_system(Path(tmp), env=env, name="bench") as system:
        say(f"koppel run is up (logs in {system.log_dir})")
        if args.client_budget:
            httpx.patch(
                f"{system.urls.twinfield_sandbox}/_sandbox/config",
                json={"limits": {"per_client_certified": args.client_budget, "per_ip": args.client_budget}},
                timeout=30,
            ).raise_for_status()
        tenants = set_up_tenants(system, args.tenants)
        say(f"{len(tenants)} tenants wired: {', '.join(t.office for t in tenants)}")
        receivers = {t.name: ErpReceiver() for t in tenants}
        for receiver in receivers.values():
            receiver.start()
        try:
            for t in tenants:
                register_erp_endpoint(system.urls.gateway, t.token, receivers[t.name])
            started = time.monotonic()
            payments = prepare_all(system, tenants, per_tenant, args.mandates)
            prepare_s = time.monotonic() - started
            say(f"prepared {n} collections in {prepare_s:.0f} s; letting the system settle")
            quiet_after = settle(receivers, args.settle)
            heard = sum(len(r.received) for r in receivers.values())
            say(f"quiet {quiet_after:.0f} s after setup ({heard} deliveries)")
            loads["idle"] = list(os.getloadavg())
            with Sampler(system.log_dir, 1.0) as idle:
                time.sleep(5)
            stuck = {name: [p.invoice_number for p in group if not p.twikey_tx] for name, group in payments.items()}
            payments = {name: [p for p in group if p.twikey_tx] for name, group in payments.items()}
            all_payments = interleave([payments[t.name] for t in tenants])
            httpx.post(f"{system.urls.twinfield_sandbox}/_sandbox/credits/reset", timeout=30)
            say(f"paying {len(all_payments)} at {args.rate}/s over {len(tenants)} tenants")
            with Sampler(system.log_dir, args.sample_every) as load:
                t0 = time.time()
                paid_at = pay(system.urls.twikey_sandbox, all_payments, args.rate, workers=32)
                pay_s = time.time() - t0
            loads["end_of_payments"] = list(os.getloadavg())
            paid_n = len(all_payments)
            accepted = sorted(paid_at.values())
            achieved = (len(accepted) - 1) / (accepted[-1] - accepted[0]) if len(accepted) > 1 else float("nan")
            say(f"paid in {pay_s:.1f} s ({achieved:.1f}/s); waiting for bookings and notifications")
            matched, done = wait_until_done(system, tenants, payments, receivers, within=args.drain_timeout)
            drained_s = time.time() - t0
            credits = twinfield_credits(system)
            to_match: list[float] = []
            to_erp: list[float] = []
            to_paid: list[float] = []
            for t in tenants:
                receiver = receivers[t.name]
                for p in payments[t.name]:
                    at = paid_at[p.invoice_number]
                    if p.invoice_number in matched:
                        to_match.append(matched[p.invoice_number] - at)
                    booked = receiver.first_seen("booking.booked", p.invoice_number)
                    if booked is not None:
                        to_erp.append(booked - at)
                    notified_paid = receiver.first_seen("collection.paid", p.invoice_number)
                    if notified_paid is not None:
                        to_paid.append(notified_paid - at)
            memos = {t.name: booked_invoice_numbers(system.urls.twinfield_sandbox, t.office) for t in tenants}
            doubles = {name: sum(1 for c in counts.values() if c > 1) for name, counts in memos.items()}
            deliveries = sum(len(r.received) for r in receivers.values())
            rejected = sum(len(r.rejected) for r in receivers.values())
            idle_rss = summarise_rss(idle.samples)
            load_rss = summarise_rss(load.samples)
            loads["during_payments_1min_median"] = [round(statistics.median(load.loads), 2)]
            loads["during_payments_1min_max"] = [round(max(load.loads), 2)]
        finally:
            for receiver in receivers.values():
                receiver.stop()

    services_rss = {
        s: {
            "idle_mb": idle_rss[f"{s} (service)"]["median_mb"],
            "load_median_mb": load_rss[f"{s} (service)"]["median_mb"],
            "load_max_mb": load_rss[f"{s} (service)"]["max_mb"],
        }
        for s in SERVICES
    }
    processes_rss = {
        name: {"idle_mb": idle_rss[name]["median_mb"], **{f"load_{k}": v for k, v in stats.items()}}
        for name, stats in load_rss.items()
        if not name.endswith("(service)") and name in idle_rss
    }
    over = sorted(s for s, v in services_rss.items() if v["load_max_mb"] > 150)
    figures: dict[str, Any] = {
        "target_rate_per_s": args.rate,
        "seconds": args.seconds,
        "tenants": args.tenants,
        "log_dir": str(system.log_dir),
        "payments_prepared": n,
        "payments_paid": paid_n,
        "collections_stuck_without_twikey_transaction": sum(len(v) for v in stuck.values()),
        "stuck_examples": ", ".join(x for v in stuck.values() for x in v[:2]) or "none",
        "achieved_rate_per_s": round(achieved, 2),
        "pay_seconds": round(pay_s, 1),
        "all_matched_and_notified": "yes" if done else "no",
        "seconds_until_all_done": round(drained_s, 1),
        "paid_to_matched_in_twinfield": latency_figures(to_match, paid_n),
        "paid_to_erp_booking_booked": latency_figures(to_erp, paid_n),
        "paid_to_erp_collection_paid": latency_figures(to_paid, paid_n),
        "target_p50_ms": 500,
        "target_p99_ms": 2000,
        "invoices_with_more_than_one_memo": sum(doubles.values()),
        "erp_deliveries": deliveries,
        "erp_rejected_signatures": rejected,
        "twinfield": credit_rates(credits, drained_s, paid_n),
        "prepare_seconds": round(prepare_s, 1),
        "settle_seconds": round(quiet_after, 1),
        "rss_per_service_mb": services_rss,
        "rss_target_mb": 150,
        "services_over_rss_target": ", ".join(over) or "none",
        "rss_per_process_mb": processes_rss,
        "load_average": {k: ", ".join(f"{x:.2f}" for x in v) for k, v in loads.items()},
        "cpu_seconds_while_paying": dict(sorted(load.cpu_seconds.items(), key=lambda kv: -kv[1])),
        "cpu_ms_per_payment": {
            name: round(seconds * 1000 / max(1, paid_n), 2)
            for name, seconds in sorted(load.cpu_seconds.items(), key=lambda kv: -kv[1])
        },
    }
    budget = (
        f"Twinfield sandbox client and IP budgets raised to {args.client_budget} credits/min for this run"
        if args.client_budget
        else "Twinfield sandbox at its published fair-use limits (500/min per client+organisation, "
        "1000/min per client and per IP)"
    )
    notes = (
        f"Whole system via `koppel run` (gateway, 5 services × api+worker, sandboxes, console) on a "
        f"{os.cpu_count()}-core machine shared with other work; load average (1/5/15 min) at start "
        f"{loads['start'][0]:.2f}/{loads['start'][1]:.2f}/{loads['start'][2]:.2f}, during the payments median "
        f"{loads['during_payments_1min_median'][0]:.2f} max {loads['during_payments_1min_max'][0]:.2f} (1 min). "
        f"{args.tenants} tenants, each its own Twikey creditor and Twinfield organisation/office, paid "
        f"interleaved at {args.rate}/s in total. {budget}. Latencies from the Twikey sandbox accepting PAID "
        "(its webhook goes out then) to the match applied in the Twinfield sandbox (its matched_at) and to "
        "booking.booked / collection.paid arriving at the tenant's ERP receiver (Standard Webhooks signatures "
        "checked); all clocks on this machine. RSS from /proc VmRSS of each process in pids.json: idle = median "
        "of 5 samples after setup, once the ERPs had heard everything about it (no delivery for 15 s); load = "
        "sampled every "
        f"{args.sample_every:g} s during the paced payments. Default service settings and INFO logging."
    )
    return figures, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50.0, help="payments per second, all tenants together")
    parser.add_argument("--seconds", type=float, default=300.0, help="how long the payments go on")
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--name", default="end_to_end", help="results file name (bench/results/<name>.json)")
    parser.add_argument("--mandates", type=int, default=20, help="signed mandates (customers) per tenant")
    parser.add_argument("--sample-every", type=float, default=3.0, help="RSS sampling interval under load (s)")
    parser.add_argument("--settle", type=float, default=20.0, help="wait after setup before idle RSS (s)")
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument(
        "--client-budget", type=int, default=None, help="raise the Twinfield sandbox's per-client and per-IP budgets"
    )
    args = parser.parse_args()
    figures, notes = run(args)
    print(json.dumps(figures, indent=1))
    path = write_result(args.name, figures, notes)
    print(f"written {path}")


if __name__ == "__main__":
    main()
