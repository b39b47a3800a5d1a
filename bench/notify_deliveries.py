"""Benchmark: notify-svc webhook deliveries to a local receiver, 100 endpoints, with and without
one dead endpoint (it accepts the connection and never answers, so every attempt times out).

The claim: a dead endpoint must not slow the others. Each scenario runs on a fresh database with
the real delivery worker (``Dispatcher``: skip-locked claims, per-endpoint in-flight limit,
per-attempt deadline) in this process and the receiver in another process:

- burst: N events stored at once (N × 100 deliveries); deliveries/s to the healthy endpoints
  from the first commit to the last healthy delivery received;
- paced: events stored at a fixed rate; commit → received latency p50/p99 of healthy deliveries.

The same figures "no dead endpoint" beside "one dead endpoint" in the same run: the ratio is what
to quote. The event log and deliveries are written with the service's own use case
(``record_event``), i.e. what the broker consumer does, without the broker.

Usage: ``uv run python bench/notify_deliveries.py [--events 40] [--rate 4] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import sqlalchemy as sa
from common import percentile, write_result

from koppel_shared.events import Envelope, new_event
from koppel_shared.events.mandate import MandateSigned
from koppel_shared.migrations import drop_database, ensure_database, migrate
from koppel_shared.service import Runtime
from notify_svc.adapters.orm import deliveries
from notify_svc.bootstrap import definition
from notify_svc.entrypoints.dispatcher import Dispatcher
from notify_svc.service_layer.endpoints import Guard, create_endpoint
from notify_svc.service_layer.ingest import record_event
from notify_svc.settings import Settings

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"
ENDPOINTS = 100


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
    label: str, *, dead: bool, mode: str, events: int, rate: float, recv_port: int, dead_port: int
) -> dict[str, Any]:
    url = f"{PG}/bench_notify_{uuid.uuid4().hex[:8]}"
    await ensure_database(url)
    settings = Settings(
        environment="test",
        jwt_secret="bench-jwt-secret-0123456789abcdef-0123",
        encryption_keys="dGVzdC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY=",
        database_url=url,
        webhook_allow_http=True,
        webhook_allowed_networks=["127.0.0.1/32"],
        delivery_timeout_seconds=5.0,
        delivery_connect_timeout_seconds=3.0,
        delivery_lease_seconds=60.0,
        delivery_poll_seconds=0.5,
        db_pool_size=10,
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
                target = (
                    f"http://127.0.0.1:{dead_port}/h/dead" if dead and n == 0 else f"http://127.0.0.1:{recv_port}/h/{n}"
                )
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
            "scenario": label,
            "mode": mode,
            "endpoints": ENDPOINTS,
            "dead_endpoint": dead,
            "events": events,
            "healthy_deliveries": len(latencies),
            "healthy_expected": healthy_expected,
            "deliveries_per_s": round(len(latencies) / max(1e-6, last - first_commit), 1),
            "p50_ms": round(percentile(latencies, 50), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "max_ms": round(max(latencies), 1) if latencies else None,
        }
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
    server, dead_port = await dead_server()
    results: dict[str, Any] = {}
    try:
        common = {"recv_port": recv_port, "dead_port": dead_port}
        for mode, events in (("burst", args.events), ("paced", int(args.rate * args.seconds))):
            for dead in (False, True):
                label = f"{mode}_{'one_dead' if dead else 'all_healthy'}"
                r = await scenario(label, dead=dead, mode=mode, events=events, rate=args.rate, **common)
                results[label] = r
                print(
                    f"{label:22} {r['healthy_deliveries']:>6}/{r['healthy_expected']:<6} healthy deliveries  "
                    f"{r['deliveries_per_s']:>8} /s  p50 {r['p50_ms']:>8} ms  p99 {r['p99_ms']:>8} ms"
                    + (f"  (dead endpoint attempts: {r['dead_endpoint_attempts']})" if dead else "")
                )
    finally:
        server.close()
        proc.terminate()
        proc.join(5)
    figures = {
        **results,
        "burst_throughput_ratio_dead_vs_healthy": round(
            results["burst_one_dead"]["deliveries_per_s"] / results["burst_all_healthy"]["deliveries_per_s"], 3
        ),
        "paced_p99_ratio_dead_vs_healthy": round(
            results["paced_one_dead"]["p99_ms"] / max(1e-6, results["paced_all_healthy"]["p99_ms"]), 3
        ),
    }
    print(
        f"dead/healthy: burst throughput ×{figures['burst_throughput_ratio_dead_vs_healthy']}, "
        f"paced p99 ×{figures['paced_p99_ratio_dead_vs_healthy']}"
    )
    path = write_result(
        "notify_deliveries",
        figures,
        notes=(
            "100 endpoints on one local receiver (own process); the dead endpoint accepts and never answers "
            "(attempt deadline 8 s, at most 4 in flight per endpoint). Latency = event committed → "
            "request received at the receiver, healthy endpoints only."
        ),
    )
    print(f"written {path}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40, help="events in the burst (× 100 deliveries)")
    parser.add_argument("--rate", type=float, default=4.0, help="paced events/s (× 100 deliveries)")
    parser.add_argument("--seconds", type=float, default=10.0, help="paced duration")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
