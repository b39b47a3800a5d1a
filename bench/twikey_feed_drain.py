"""Benchmark: 100,000 mandate messages in the Twikey sandbox turned into published events by
sync-svc's worker, beside the bare feed read (the same pages fetched and parsed, nothing else).

Processes as in production: the sandbox (uvicorn) and sync-svc's worker (drain loop + outbox
relay), each its own process. The sandbox is seeded with N signed mandates (one feed message
each, 100 per page as Twikey pages). A drain request + NOTIFY starts the clock; it stops when every
event is confirmed by RabbitMQ (outbox rows marked sent) and counted in a tap queue bound to
``twikey.mandate.changed``. The reference reads the same feed again from the start with plain
httpx (``X-RESUME-AFTER``), in the same run.

Usage: ``uv run python bench/twikey_feed_drain.py [--messages 100000] [--page-size 100]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aio_pika
import httpx
import sqlalchemy as sa
from common import write_result
from sqlalchemy.ext.asyncio import create_async_engine

from koppel_shared.crypto import SecretBox
from koppel_shared.messaging.topology import declare_exchange
from koppel_shared.migrations import drop_database, migrate
from sync_svc.bootstrap import definition

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
ENCRYPTION_KEY = "YmVuY2gta2V5LTAxMjM0NTY3ODlhYmNkZWYwMTIzNDU="
API_KEY = "BENCHDRAIN" + uuid.uuid4().hex.upper()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a server process (started once, before anything is measured)."""
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)


async def reference_read(base: str, expected: int) -> float:
    """Messages/s of reading and JSON-parsing the whole feed with nothing else."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        token = (await client.post("", data={"apiToken": API_KEY})).headers["Authorization"]
        headers = {"Authorization": token, "X-RESUME-AFTER": "0"}
        seen, started = 0, time.perf_counter()
        while True:
            page = (await client.get("/mandate", headers=headers)).json()["Messages"]
            headers.pop("X-RESUME-AFTER", None)
            if not page:
                break
            seen += len(page)
        elapsed = time.perf_counter() - started
    assert seen == expected, (seen, expected)
    return seen / elapsed


async def run(args: argparse.Namespace) -> None:
    database_url = f"{PG}/bench_sync_drain"
    exchange_name = f"bench_drain_{uuid.uuid4().hex[:8]}.events"
    tenant_id = uuid.uuid4()
    sandbox_port = free_port()
    sandbox_base = f"http://127.0.0.1:{sandbox_port}"
    procs: list[subprocess.Popen[bytes]] = []
    engine = create_async_engine(database_url)
    connection = await aio_pika.connect(AMQP)
    try:
        procs.append(spawn([sys.executable, "-m", "twikey_sandbox", "--port", str(sandbox_port), "--api-key", API_KEY]))
        await drop_database(database_url)
        await migrate(definition.migrations_dir, database_url)
        async with httpx.AsyncClient(base_url=f"{sandbox_base}/_sandbox", timeout=600) as control:
            for _ in range(100):
                try:
                    if (await control.get("/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)
            seeded_at = time.perf_counter()
            await control.post("/seed", json={"api_key": API_KEY, "mandates": args.messages})
            print(f"seeded {args.messages} mandates in {time.perf_counter() - seeded_at:.1f} s")
            if args.page_size != 100:
                await control.patch(f"/creditors/{API_KEY}", json={"feed_page_size": args.page_size})

        async with engine.begin() as conn:
            await conn.execute(
                sa.text("INSERT INTO twikey_connections (tenant_id, api_key_enc, base_url) VALUES (:t, :k, :b);"),
                {"t": tenant_id, "k": SecretBox(ENCRYPTION_KEY).encrypt(API_KEY), "b": f"{sandbox_base}/creditor"},
            )
            # Start from the first message (a new connection would follow Twikey's server queue).
            await conn.execute(
                sa.text("INSERT INTO feed_cursors (tenant_id, feed, cursor) VALUES (:t, 'mandate', 0)"),
                {"t": tenant_id},
            )

        channel = await connection.channel()
        exchange = await declare_exchange(channel, exchange_name)
        tap = await channel.declare_queue(
            f"{exchange_name}.tap", arguments={"x-queue-type": "classic", "x-expires": 600_000}
        )
        await tap.bind(exchange, routing_key="twikey.mandate.changed")

        env = {
            **os.environ,
            "KOPPEL_SYNC_DATABASE_URL": database_url,
            "KOPPEL_ENCRYPTION_KEYS": ENCRYPTION_KEY,
            "KOPPEL_LOG_LEVEL": "WARNING",
            "KOPPEL_EXCHANGE": exchange_name,
            "KOPPEL_QUEUE_PREFIX": f"{exchange_name}.",
            "KOPPEL_QUEUE_TYPE": "classic",
            "KOPPEL_QUEUE_EXPIRES_MS": "600000",
            "KOPPEL_RELAY_BATCH_SIZE": str(args.relay_batch),
        }
        procs.append(spawn([sys.executable, "-m", "sync_svc", "worker"], env))
        await asyncio.sleep(3)  # worker connected and listening

        started = time.perf_counter()
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO drain_requests (tenant_id) VALUES (:t)"), {"t": tenant_id})
            await conn.execute(sa.text("SELECT pg_notify('sync_drain', :t)"), {"t": str(tenant_id)})
        drained_at: float | None = None
        while True:
            await asyncio.sleep(0.25)
            async with engine.connect() as conn:
                written = await conn.scalar(sa.text("SELECT count(*) FROM outbox"))
                unsent = await conn.scalar(sa.text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))
            if drained_at is None and written >= args.messages:
                drained_at = time.perf_counter()
            if drained_at is not None and unsent == 0:
                published_at = time.perf_counter()
                break
            if time.perf_counter() - started > args.timeout:
                raise RuntimeError(f"timeout: {written} written, {unsent} unsent")
        in_tap = (await channel.declare_queue(f"{exchange_name}.tap", passive=True)).declaration_result.message_count
        reference = await reference_read(f"{sandbox_base}/creditor", args.messages)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        with_channel = await connection.channel()
        await with_channel.queue_delete(f"{exchange_name}.tap")
        for name in (exchange_name, exchange_name + ".unrouted"):
            await with_channel.exchange_delete(name)
        await with_channel.queue_delete(exchange_name + ".unrouted")
        await connection.close()
        await engine.dispose()
        await drop_database(database_url)

    total = published_at - started
    figures = {
        "messages": args.messages,
        "page_size": args.page_size,
        "events_in_outbox_per_s": round(args.messages / (drained_at - started)),
        "events_published_per_s": round(args.messages / total),
        "seconds_to_published": round(total, 2),
        "events_in_tap_queue": in_tap,
        "reference_bare_feed_read_per_s": round(reference),
        "target": ">= 1000 messages/s published",
    }
    path = write_result(
        "twikey_feed_drain",
        figures,
        notes="sync-svc worker process (drain loop + outbox relay with publisher confirms) against the sandbox "
        "process; reference = the same feed read and JSON-parsed by plain httpx in the same run.",
    )
    print(
        f"{args.messages} messages: {figures['events_in_outbox_per_s']}/s into the outbox, "
        f"{figures['events_published_per_s']}/s published ({total:.1f} s); tap queue holds {in_tap}; "
        f"bare feed read {figures['reference_bare_feed_read_per_s']}/s  ->  {path}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--relay-batch", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=900)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
