"""Benchmark: collection-svc's engine at volume, beside raw references measured in the same run.

1. **Submit**: N invoices due today (seeded straight into the database, scheduled for today) are
   claimed by the scheduler of ``--replicas`` worker processes (``FOR UPDATE SKIP LOCKED``, 5,000
   per transaction), each becoming a bulk ``sync.collect_requested`` item plus a
   ``collection.submitted`` event through the outbox. Measured: start of the workers → the last
   command item received on a tap queue (target ≤ 60 s for 100,000), and → every event relayed.
   Reference: raw aio-pika publishing the same number of persistent messages with confirms in
   batches of 200 (the floor for relaying one event per collection).
2. **Paid**: N ``twikey.transaction.changed`` PAID envelopes, as sync-svc publishes them, are put on
   the service's work queue before its workers start; measured: workers start → every collection
   ``paid`` in the database (each with its ``collection.paid`` in the outbox), target ≥ 1,000/s.
   Reference: a raw aio-pika consumer acking the same number of messages from a queue.

Usage: ``uv run python bench/collection_engine.py [--invoices 100000] [--replicas 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aio_pika
import sqlalchemy as sa
from common import write_result

from collection_svc.bootstrap import make_definition
from collection_svc.settings import Settings
from koppel_shared.db import make_engine
from koppel_shared.events import Envelope, new_event
from koppel_shared.events.twikey import TwikeyTransactionChanged, twikey_event_uuid
from koppel_shared.messaging.broker import to_message
from koppel_shared.messaging.topology import declare_exchange, declare_work_queue
from koppel_shared.migrations import drop_database, ensure_database, migrate
from koppel_shared.service import Runtime, run_worker

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"


def settings_for(db: str, tag: str, scheduler: bool) -> Settings:
    return Settings(
        environment="dev",
        database_url=db,
        exchange=f"bench.{tag}.events",
        queue_prefix=f"bench.{tag}.",
        queue_type="quorum",
        queue_expires_ms=600_000,
        scheduler_enabled=scheduler,
        scheduler_interval_seconds=0.5,
        relay_batch_size=500,
        prefetch=256,
        log_level="WARNING",
    )


# --------------------------------------------------------------------------- seeding
SEED_SQL = """
WITH t AS (SELECT CAST(:tenant AS uuid) AS tenant_id)
INSERT INTO invoices (id, tenant_id, invoice_number, customer_number, customer_name, customer_email, amount_cents,
                      currency, invoice_date, due_date, description, fingerprint, created_at)
SELECT md5('inv' || g)::uuid, t.tenant_id, 'B-' || g, 'C-' || (g % 5000), 'Debtor ' || (g % 5000),
       'd' || (g % 5000) || '@example.be', 1000 + (g % 5000), 'EUR', CAST(:today AS date), CAST(:today AS date),
       'Invoice B-' || g, md5('fp' || g), now()
FROM generate_series(1, :n) g, t
"""
SEED_COLLECTIONS = """
INSERT INTO collections (id, tenant_id, invoice_id, attempt, method, status, reason_code, reason, mandate_number,
                         collect_on, requested_date, version, created_at, updated_at)
SELECT md5('col' || g)::uuid, CAST(:tenant AS uuid), md5('inv' || g)::uuid, 1, 'direct_debit', 'scheduled', 'due',
       'held', 'KOP' || (g % 5000), CAST(:today AS date), CAST(:today AS date), 1, now(), now()
FROM generate_series(1, :n) g
"""


async def seed(db: str, tenant: uuid.UUID, n: int) -> None:
    await ensure_database(db)
    await migrate(make_definition().migrations_dir, db)
    engine = make_engine(db, 1)
    today = datetime.now(UTC).date()
    async with engine.begin() as conn:
        await conn.execute(sa.text(SEED_SQL), {"tenant": str(tenant), "today": today, "n": n})
        await conn.execute(sa.text(SEED_COLLECTIONS), {"tenant": str(tenant), "today": today, "n": n})
        await conn.execute(sa.text("ANALYZE"))
    await engine.dispose()


def collection_ids(n: int) -> list[str]:
    import hashlib

    return [str(uuid.UUID(hashlib.md5(f"col{g}".encode()).hexdigest())) for g in range(1, n + 1)]


# --------------------------------------------------------------------------- worker process
def worker_process(db: str, tag: str, scheduler: bool, stop_after: float) -> None:
    async def go() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(stop_after, stop.set)
        await run_worker(make_definition(), settings_for(db, tag, scheduler), stop)

    asyncio.run(go())


def start_workers(db: str, tag: str, replicas: int, scheduler: bool, budget: float) -> list[mp.Process]:
    procs = [mp.Process(target=worker_process, args=(db, tag, scheduler, budget)) for _ in range(replicas)]
    for p in procs:
        p.start()
    return procs


def stop_workers(procs: list[mp.Process]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.join(15)


# --------------------------------------------------------------------------- 1. submit
async def tap_commands(exchange_name: str, n: int, ready: asyncio.Event, done: asyncio.Event, out: dict[str, Any]):
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        exchange = await declare_exchange(channel, exchange_name)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key="sync.collect_requested")
        items: set[str] = set()

        async def on(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            envelope = Envelope.from_json(message.body)
            items.update(i["collection_id"] for i in envelope.data["items"])
            out["commands"] = out.get("commands", 0) + 1
            out["items_received"] = len(items)
            await message.ack()
            if len(items) >= n:
                out["last_item_at"] = time.time()
                done.set()

        await queue.consume(on)
        ready.set()
        await done.wait()


async def outbox_unsent(db: str) -> int:
    engine = make_engine(db, 1)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(sa.text("SELECT count(*) FROM outbox WHERE sent_at IS NULL"))).scalar_one())
    finally:
        await engine.dispose()


def run_submit(db: str, tag: str, n: int, replicas: int) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        ready, done = asyncio.Event(), asyncio.Event()
        out: dict[str, Any] = {}
        tap = asyncio.create_task(tap_commands(f"bench.{tag}.events", n, ready, done, out))
        await ready.wait()
        procs = start_workers(db, tag, replicas, scheduler=True, budget=600)
        try:
            # seeded as "held": released in one statement once every replica is up
            await wait_for_consumers(settings_for(db, tag, True), "system", replicas)
            engine = make_engine(db, 1)
            async with engine.begin() as conn:
                await conn.execute(sa.text("UPDATE collections SET status = 'scheduled' WHERE status = 'held'"))
            await engine.dispose()
            start = time.time()
            await asyncio.wait_for(done.wait(), timeout=600)
            while await outbox_unsent(db):  # noqa: ASYNC110 - polling another process's database
                await asyncio.sleep(0.5)
            all_relayed = time.time()
        finally:
            stop_workers(procs)
            tap.cancel()
        commands_s = out["last_item_at"] - start
        return {
            "invoices": n,
            "replicas": replicas,
            "commands": out["commands"],
            "seconds_to_last_command": commands_s,
            "items_per_second": n / commands_s,
            "seconds_to_every_event_relayed": all_relayed - start,
        }

    return asyncio.run(go())


async def raw_publish(n: int, batch: int = 200) -> dict[str, float]:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            f"bench.raw.{uuid.uuid4().hex[:8]}", durable=True, arguments={"x-queue-type": "quorum"}
        )
        body = b"x" * 900  # about the size of a collection event
        start = time.time()
        for i in range(0, n, batch):
            await asyncio.gather(
                *(
                    channel.default_exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue.name
                    )
                    for _ in range(min(batch, n - i))
                )
            )
        elapsed = time.time() - start
        consumed = await raw_consume(channel, queue, n)
        await queue.delete(if_unused=False, if_empty=False)
    return {"messages": n, "publish_per_second": n / elapsed, "consume_ack_per_second": consumed}


async def raw_consume(channel: Any, queue: Any, n: int) -> float:
    await channel.set_qos(prefetch_count=256)
    done = asyncio.Event()
    count = 0

    async def on(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal count
        await message.ack()
        count += 1
        if count >= n:
            done.set()

    start = time.time()
    tag = await queue.consume(on)
    await done.wait()
    await queue.cancel(tag)
    return n / (time.time() - start)


# --------------------------------------------------------------------------- 2. paid
async def publish_paid(db: str, tag: str, tenant: uuid.UUID, n: int) -> float:
    settings = settings_for(db, tag, scheduler=False)
    runtime = await Runtime.open("collection", settings)
    try:
        spec = runtime.queue("twikey", ("twikey.transaction.changed",))
        await declare_work_queue(runtime.broker.channel, runtime.broker.exchange, spec)
        start = time.time()
        ids = collection_ids(n)
        batch = 500
        for i in range(0, n, batch):
            envelopes = []
            for j in range(i, min(n, i + batch)):
                twikey_event_id = f"transaction/{j + 1}"
                envelopes.append(
                    new_event(
                        TwikeyTransactionChanged(
                            twikey_event_id=twikey_event_id,
                            feed_seq=j + 1,
                            transaction_id=str(100000 + j),
                            reference=ids[j],
                            mandate_number=f"KOP{(j + 1) % 5000}",
                            amount_cents=1000 + (j + 1) % 5000,
                            state="PAID",
                            final=True,
                        ),
                        tenant_id=tenant,
                        id=twikey_event_uuid(tenant, twikey_event_id),
                    )
                )
            await asyncio.gather(
                *(runtime.broker.exchange.publish(to_message(e), routing_key=e.type, mandatory=True) for e in envelopes)
            )
        return n / (time.time() - start)
    finally:
        await runtime.close()


async def count_paid(db: str) -> tuple[int, int, int]:
    engine = make_engine(db, 1)
    try:
        async with engine.connect() as conn:
            paid = (await conn.execute(sa.text("SELECT count(*) FROM collections WHERE status = 'paid'"))).scalar_one()
            events = (
                await conn.execute(sa.text("SELECT count(*) FROM outbox WHERE type = 'collection.paid'"))
            ).scalar_one()
            received = (
                await conn.execute(
                    sa.text("SELECT count(*) FROM inbox WHERE event_type = 'twikey.transaction.changed'")
                )
            ).scalar_one()
            return int(paid), int(events), int(received)
    finally:
        await engine.dispose()


async def wait_for_consumers(settings: Settings, purpose: str, count: int) -> None:
    """Until ``count`` worker replicas consume the work queue (started, connected, looping)."""
    connection = await aio_pika.connect(AMQP)
    async with connection:
        deadline = time.time() + 180
        while time.time() < deadline:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(f"{settings.queue_prefix}collection.{purpose}", passive=True)
                if (queue.declaration_result.consumer_count or 0) >= count:
                    return
            except aio_pika.exceptions.ChannelClosed:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("workers did not start")


def run_paid(db: str, tag: str, tenant: uuid.UUID, n: int, replicas: int) -> dict[str, Any]:
    publish_rate = asyncio.run(publish_paid(db, tag, tenant, n))
    # The workers start on an empty "system" queue and a full "twikey" one: the clock starts when
    # the process is up (its first consumer exists), not at process spawn.
    procs = start_workers(db, tag, replicas, scheduler=False, budget=900)
    try:
        asyncio.run(wait_for_consumers(settings_for(db, tag, False), "system", replicas))
        start = time.time()
        received_at = None

        async def wait() -> tuple[int, int, int]:
            nonlocal received_at
            while True:
                paid, events, received = await count_paid(db)
                if received >= n and received_at is None:
                    received_at = time.time()
                if paid >= n or time.time() - start > 900:
                    return paid, events, received
                await asyncio.sleep(0.25)

        paid, events, _ = asyncio.run(wait())
        elapsed = time.time() - start
    finally:
        stop_workers(procs)
    return {
        "envelopes": n,
        "replicas": replicas,
        "published_per_second": publish_rate,
        "paid": paid,
        "collection_paid_events": events,
        "seconds": elapsed,
        "per_second": paid / elapsed,
        "seconds_to_all_received": (received_at or time.time()) - start,
    }


async def cleanup(tag: str) -> None:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        prefix = f"bench.{tag}."
        names = [f"{prefix}collection.{p}" for p in ("system", "mandates", "twikey")]
        for name in names:
            await channel.queue_delete(name)
            for delay in (1_000, 10_000, 60_000, 600_000):
                await channel.queue_delete(f"{name}.retry.{delay}ms")
        await channel.queue_delete(f"{prefix}collection.dead-letter")
        await channel.exchange_delete(f"{prefix}events")
        await channel.exchange_delete(f"{prefix}events.unrouted")
        await channel.queue_delete(f"{prefix}events.unrouted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    mp.set_start_method("spawn")
    n = args.invoices
    tag = uuid.uuid4().hex[:8]
    db = f"{PG}/bench_collection_{tag}"
    tenant = uuid.uuid4()

    reference = asyncio.run(raw_publish(n))
    asyncio.run(seed(db, tenant, n))
    try:
        submit = run_submit(db, tag, n, args.replicas)
        paid = run_paid(db, tag, tenant, n, args.replicas)
    finally:
        asyncio.run(cleanup(tag))
        if not args.keep_db:
            asyncio.run(drop_database(db))

    figures = {
        "submit": submit,
        "paid": paid,
        "reference_raw_aio_pika": reference,
        "ratio_submit_vs_raw_publish": submit["items_per_second"] / reference["publish_per_second"],
        "ratio_paid_vs_raw_consume": paid["per_second"] / reference["consume_ack_per_second"],
        "targets": {"submit_seconds_at_most": 60, "paid_per_second_at_least": 1000},
    }
    path = write_result(
        "collection_engine",
        figures,
        notes=(
            f"{args.replicas} worker processes (scheduler + outbox relay + inbox consumers); quorum queues; "
            "commands published to the broker (sync-svc not in the loop); PAID envelopes queued before the "
            "workers start"
        ),
    )
    print(f"submit: {n} due invoices → {submit['commands']} sync.collect_requested commands")
    print(f"  last command published after {submit['seconds_to_last_command']:6.1f} s  (target ≤ 60 s)")
    print(f"  every event relayed after   {submit['seconds_to_every_event_relayed']:6.1f} s")
    raw_publish_rate = reference["publish_per_second"]
    print(f"  = {submit['items_per_second']:8.0f} items/s  vs raw aio-pika publish {raw_publish_rate:8.0f}/s")
    print(f"paid: {paid['paid']} collections paid, {paid['collection_paid_events']} collection.paid events")
    raw_consume_rate = reference["consume_ack_per_second"]
    print(f"  {paid['per_second']:8.0f}/s (target ≥ 1,000/s)  vs raw aio-pika consume+ack {raw_consume_rate:8.0f}/s")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
