"""Benchmark: notify-svc webhook deliveries to a local receiver, 100 endpoints, with and without
one dead endpoint, in two forms: one that accepts the connection and never answers (every attempt
runs into its deadline) and one that refuses connections.

The claim: a dead endpoint must not slow the others. Each run uses a fresh database with the real
delivery worker (``Dispatcher``: skip-locked claims, per-endpoint in-flight limit, main and slow
budgets, circuit breaker, per-attempt deadline) in this process and the receiver in another:

- burst: N events stored at once (N × 100 deliveries); deliveries/s to the healthy endpoints
  from the first commit to the last healthy delivery received, and their latency;
- paced: events stored at a fixed rate; commit → received latency p50/p99 of healthy deliveries.

The machine is shared and noisy, so one run of each proves nothing: the scenarios are interleaved
(all healthy, dead hanging, dead refusing, then the other way round next round, …), each dead
run is divided by the all-healthy run of the same round and mode, and the medians (with min and
max) of those ratios are what to quote. The event log and deliveries are written with the
service's own use case (``record_event``), i.e. what the broker consumer does, without the broker.

Usage: ``uv run python bench/notify_deliveries.py [--rounds 5] [--events 40] [--rate 1.5] [--seconds 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import socket
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg
import httpx
import sqlalchemy as sa
from common import percentile, write_result

from koppel_shared.events import Envelope, new_event
from koppel_shared.events.mandate import MandateSigned
from koppel_shared.migrations import drop_database, ensure_database, migrate
from koppel_shared.service import Runtime
from koppel_shared.testing.fixtures import TEST_PUBLIC_KEYS
from notify_svc.adapters.orm import deliveries
from notify_svc.bootstrap import definition
from notify_svc.entrypoints.dispatcher import Dispatcher
from notify_svc.service_layer.endpoints import Guard, create_endpoint
from notify_svc.service_layer.ingest import record_event
from notify_svc.settings import Settings

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"
ENDPOINTS = 100
KINDS = ("all_healthy", "dead_hang", "dead_refused")
DEADLINE = (5.0, 3.0)  # answer, connect: a hanging attempt ends after 8 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- the receiver (own process)
def receiver_process(port: int, ready: Any) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    seen: dict[str, float] = {}

    async def hook(request: Request) -> Response:
        now = time.time()
        await request.body()
        seen[f"{request.url.path}|{request.headers.get('webhook-id')}"] = now
        return Response(status_code=204)

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(seen)

    async def reset(request: Request) -> Response:
        seen.clear()
        return Response(status_code=204)

    app = Starlette(
        routes=[
            Route("/_stats", stats, methods=["GET"]),
            Route("/_reset", reset, methods=["POST"]),
            Route("/h/{n}", hook, methods=["POST"]),
        ]
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    ready.set()
    uvicorn.Server(config).run()


async def dead_server() -> tuple[asyncio.Server, int]:
    """Accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


def event(tenant: uuid.UUID, i: int) -> Envelope:
    from datetime import UTC, datetime

    data = MandateSigned(
        mandate_id=str(uuid.uuid4()),
        customer_number=f"C-{i}",
        status="active",
        scheme="CORE",
        version=1,
        updated_at=datetime.now(UTC),
    )
    return new_event(data, tenant_id=tenant)


# ---------------------------------------------------------------- one scenario
async def scenario(
    kind: str, *, mode: str, events: int, rate: float, recv_port: int, hang_port: int, postgres: str
) -> dict[str, Any]:
    dead = kind != "all_healthy"
    # Nothing listens on a port just handed out and closed again: connections are refused.
    dead_url = f"http://127.0.0.1:{hang_port if kind == 'dead_hang' else free_port()}/h/dead"
    url = f"{postgres}/bench_notify_{uuid.uuid4().hex[:8]}"
    await ensure_database(url)
    settings = Settings(
        environment="test",
        encryption_keys="dGVzdC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY=",
        token_public_keys=TEST_PUBLIC_KEYS,
        database_url=url,
        webhook_allow_http=True,
        webhook_allowed_networks=["127.0.0.1/32"],
        delivery_timeout_seconds=DEADLINE[0],
        delivery_connect_timeout_seconds=DEADLINE[1],
        delivery_lease_seconds=60.0,
        delivery_poll_seconds=0.5,
        db_pool_size=5,  # the PostgreSQL is shared; 10 connections at most are plenty here
        log_level="WARNING",
    )
    await migrate(definition.migrations_dir, url)
    runtime = await Runtime.open("notify", settings, connect_broker=False)
    async with httpx.AsyncClient() as http:
        await http.post(f"http://127.0.0.1:{recv_port}/_reset")
    try:
        tenant = uuid.uuid4()
        guard = Guard(settings.url_policy, lambda h, p: asyncio.sleep(0, [h]))  # literals only
        dead_id = None
        async with runtime.uow() as uow:
            for n in range(ENDPOINTS):
                target = dead_url if dead and n == 0 else f"http://127.0.0.1:{recv_port}/h/{n}"
                view, _ = await create_endpoint(uow, runtime.secrets, guard, tenant, target, ["mandate.*"])
                if dead and n == 0:
                    dead_id = view["id"]
            await uow.commit()

        stop = asyncio.Event()
        dispatcher = Dispatcher(runtime)
        task = asyncio.create_task(dispatcher.run(stop))
        committed: dict[str, float] = {}

        async def store(e: Envelope) -> None:
            async with runtime.uow() as uow:
                await record_event(uow, e)
                await uow.commit()
            committed[str(e.id)] = time.time()

        load_before = os.getloadavg()[0]
        started = time.time()
        if mode == "burst":
            batch = [event(tenant, i) for i in range(events)]
            for e in batch:
                await store(e)
        else:
            interval = 1.0 / rate
            for i in range(events):
                await store(event(tenant, i))
                await asyncio.sleep(max(0.0, started + (i + 1) * interval - time.time()))
        healthy_expected = events * (ENDPOINTS - (1 if dead else 0))

        async def healthy_done() -> int:
            async with runtime.engine.connect() as conn:
                q = sa.select(sa.func.count()).select_from(deliveries).where(deliveries.c.status == "succeeded")
                return int((await conn.execute(q)).scalar_one())

        for _ in range(1500):  # at most ~5 minutes
            if await healthy_done() >= healthy_expected:
                break
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(task, 30)

        async with httpx.AsyncClient() as http:
            seen: dict[str, float] = (await http.get(f"http://127.0.0.1:{recv_port}/_stats")).json()
        latencies = []
        last = started
        for key, at in seen.items():
            _path, event_id = key.split("|")
            if event_id in committed:
                latencies.append((at - committed[event_id]) * 1000)
                last = max(last, at)
        first_commit = min(committed.values())
        figures = {
            "kind": kind,
            "mode": mode,
            "events": events,
            "healthy_deliveries": len(latencies),
            "healthy_expected": healthy_expected,
            "deliveries_per_s": round(len(latencies) / max(1e-6, last - first_commit), 1),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(max(latencies), 1) if latencies else None,
            "load_1min_before": round(load_before, 2),
            "load_1min_after": round(os.getloadavg()[0], 2),
        }
        async with runtime.engine.connect() as conn:
            # A healthy delivery that needed a second attempt waited for the retry schedule (5 s):
            # with a saturated machine, an attempt can run into its deadline (the tail of p99).
            retried = await conn.execute(
                sa.select(sa.func.count()).where(
                    deliveries.c.attempts > 1, deliveries.c.status == "succeeded", deliveries.c.endpoint_id != dead_id
                )
            )
            figures["healthy_retried"] = int(retried.scalar_one())
        if dead_id is not None:
            async with runtime.engine.connect() as conn:
                attempts = await conn.execute(
                    sa.select(sa.func.coalesce(sa.func.sum(deliveries.c.attempts), 0)).where(
                        deliveries.c.endpoint_id == dead_id
                    )
                )
                figures["dead_endpoint_attempts"] = int(attempts.scalar_one())
        return figures
    finally:
        await runtime.close()
        await drop_database(url)


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def summarise(runs: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """Medians per scenario, and each dead run divided by the all-healthy run of its round."""

    def run(r: int, mode: str, kind: str) -> dict[str, Any]:
        return next(x for x in runs if x["round"] == r and x["mode"] == mode and x["kind"] == kind)

    figures: dict[str, Any] = {"rounds": rounds}
    for mode in ("burst", "paced"):
        per_kind: dict[str, Any] = {}
        for kind in KINDS:
            mine = [x for x in runs if x["mode"] == mode and x["kind"] == kind]
            per_kind[kind] = {
                "deliveries_per_s": spread([x["deliveries_per_s"] for x in mine]),
                "p50_ms": spread([x["p50_ms"] for x in mine]),
                "p99_ms": spread([x["p99_ms"] for x in mine]),
                "all_delivered": all(x["healthy_deliveries"] == x["healthy_expected"] for x in mine),
                "healthy_retried": spread([x["healthy_retried"] for x in mine]),
            }
            if kind != "all_healthy":
                per_kind[kind]["dead_endpoint_attempts"] = spread([x["dead_endpoint_attempts"] for x in mine])
        figures[mode] = per_kind
    ratios: dict[str, Any] = {}
    for mode in ("burst", "paced"):
        for kind in KINDS[1:]:
            for figure, name in (("deliveries_per_s", "throughput"), ("p99_ms", "p99")):
                per_round = [
                    run(r, mode, kind)[figure] / max(1e-6, run(r, mode, "all_healthy")[figure]) for r in range(rounds)
                ]
                ratios[f"{mode}_{name}_{kind}_vs_healthy"] = {
                    **spread(per_round),
                    "per_round": [round(x, 3) for x in per_round],
                }
    figures["ratios"] = ratios
    loads = [x["load_1min_before"] for x in runs]
    figures["machine_load_1min"] = spread(loads)
    return figures


async def with_retries(run: Any, attempts: int = 40) -> dict[str, Any]:
    """The shared PostgreSQL sometimes has no connection left for us: wait and run again."""
    for attempt in range(1, attempts + 1):
        try:
            return await run()
        except (OSError, asyncpg.exceptions.PostgresError) as exc:
            if attempt == attempts:
                raise
            print(f"  run failed ({type(exc).__name__}: {exc}); again in 15 s", flush=True)
            await asyncio.sleep(15)
    raise AssertionError("unreachable")


async def main_async(args: argparse.Namespace) -> None:
    recv_port = free_port()
    ready = mp.Event()
    proc = mp.Process(target=receiver_process, args=(recv_port, ready), daemon=True)
    proc.start()
    ready.wait(20)
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"http://127.0.0.1:{recv_port}/_stats")).status_code == 200:
                    break
            await asyncio.sleep(0.05)
    server, hang_port = await dead_server()
    runs: list[dict[str, Any]] = []
    sizes = {"burst": args.events, "paced": int(args.rate * args.seconds)}
    try:
        for r in range(args.rounds):
            # Alternate the order so that a drift in the machine's load favours no scenario.
            order = KINDS if r % 2 == 0 else tuple(reversed(KINDS))
            for mode in ("burst", "paced"):
                for kind in order:
                    params = {
                        "mode": mode,
                        "events": sizes[mode],
                        "rate": args.rate,
                        "recv_port": recv_port,
                        "postgres": args.postgres,
                    }
                    x = await with_retries(lambda k=kind, p=params: scenario(k, hang_port=hang_port, **p))
                    x["round"] = r
                    runs.append(x)
                    print(
                        f"round {r} {mode:5} {kind:12} {x['healthy_deliveries']:>5}/{x['healthy_expected']:<5} "
                        f"retried {x['healthy_retried']:>3} "
                        f"{x['deliveries_per_s']:>7} /s  p50 {x['p50_ms']:>7} ms  p99 {x['p99_ms']:>7} ms  "
                        f"load {x['load_1min_before']:>5}"
                        + (f"  dead attempts {x['dead_endpoint_attempts']}" if "dead_endpoint_attempts" in x else ""),
                        flush=True,
                    )
    finally:
        server.close()
        proc.terminate()
        proc.join(5)
    figures = summarise(runs, args.rounds)
    for name, ratio in figures["ratios"].items():
        print(f"{name:45} median ×{ratio['median']}  (min {ratio['min']}, max {ratio['max']})")
    path = write_result(
        "notify_deliveries",
        figures,
        notes=(
            f"{ENDPOINTS} endpoints on one local receiver (own process); {args.rounds} interleaved rounds of "
            "all healthy / one dead endpoint that accepts and never answers / one dead endpoint that refuses "
            f"connections, burst ({args.events} events) and paced ({args.rate:g} events/s for {args.seconds:g} s). "
            f"Attempt deadline {DEADLINE[0] + DEADLINE[1]:g} s, at most 4 in flight per endpoint, service defaults "
            "otherwise (slow budget after 2 s, breaker after 3 failures). Latency = event committed → request "
            "received at the receiver, healthy endpoints only. Ratios = dead run / all-healthy run of the same "
            "round; median (min, max) over the rounds. Each run's figures are under `runs`. "
            "PostgreSQL: "
            + ("the shared one." if args.postgres == PG else f"a separate server at {args.postgres.split('@')[-1]}.")
        ),
    )
    # The raw runs beside the figures (report.py renders only the figures).
    result = json.loads(path.read_text())
    result["runs"] = runs
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of every scenario")
    parser.add_argument("--postgres", default=PG, help="server for the runs' databases (when the shared one is full)")
    parser.add_argument("--events", type=int, default=40, help="events in the burst (× 100 deliveries)")
    # Well below what the machine delivers when busy, so that the latency is delivery, not backlog.
    parser.add_argument("--rate", type=float, default=1.5, help="paced events/s (× 100 deliveries)")
    parser.add_argument("--seconds", type=float, default=20.0, help="paced duration")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
