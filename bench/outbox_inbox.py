"""Benchmark: the outbox → RabbitMQ → inbox path, beside raw aio-pika on the same broker.

Three processes, as in production: a writer (an API committing one event per transaction), a relay
(the producing service's worker) and a consumer (another service's worker, inbox + one effect row
per event; and once with the inbox row as the only write, the path on its own). The reference is
raw aio-pika: a publisher with publisher confirms and a consumer that acks, on a queue of the same
type. Measured:

- throughput: N events as fast as the writer can commit; events/s from first commit to last handled;
- latency: events committed at a fixed rate (300/s); commit → handled (after the inbox commit) p50/p99.

Usage: ``uv run python bench/outbox_inbox.py [--events 10000] [--rate 300] [--seconds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aio_pika
import sqlalchemy as sa
from common import percentile, write_result

from koppel_shared.db import UnitOfWork, asyncpg_dsn, make_engine, make_session_factory
from koppel_shared.events import Envelope, new_event
from koppel_shared.events.system import Ping
from koppel_shared.messaging.broker import Broker
from koppel_shared.messaging.inbox import InboxConsumer
from koppel_shared.messaging.outbox import OutboxRelay
from koppel_shared.messaging.tables import metadata as messaging_metadata
from koppel_shared.messaging.topology import QueueSpec
from koppel_shared.migrations import drop_database, ensure_database

AMQP = "amqp://guest:guest@127.0.0.1:5672/"
PREFETCH = 256
PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"

effects = sa.Table(
    "bench_effects",
    sa.MetaData(),
    sa.Column("event_id", sa.Uuid, primary_key=True),
    sa.Column("handled_at", sa.Float, nullable=False),
)


# ---------------------------------------------------------------- raw aio-pika reference
def raw_publisher(queue: str, n: int, batch: int, out: Any) -> None:
    async def go() -> None:
        conn = await aio_pika.connect(AMQP)
        async with conn:
            ch = await conn.channel(publisher_confirms=True)
            sent: dict[str, float] = {}
            start = time.time()
            for i in range(0, n, batch):
                msgs = []
                for j in range(i, min(n, i + batch)):
                    mid = str(j)
                    sent[mid] = time.time()
                    msgs.append(
                        ch.default_exchange.publish(
                            aio_pika.Message(
                                b"x" * 300, message_id=mid, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                            ),
                            routing_key=queue,
                        )
                    )
                await asyncio.gather(*msgs)
            out.put(("pub", start, sent))

    asyncio.run(go())


def raw_consumer(queue: str, n: int, ready: Any, out: Any) -> None:
    async def go() -> None:
        conn = await aio_pika.connect(AMQP)
        async with conn:
            ch = await conn.channel()
            await ch.set_qos(prefetch_count=64)
            q = await ch.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
            got: dict[str, float] = {}
            done = asyncio.Event()

            async def on(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
                got[msg.message_id or ""] = time.time()
                await msg.ack()
                if len(got) >= n:
                    done.set()

            await q.consume(on)
            ready.set()
            await done.wait()
            await q.delete(if_unused=False, if_empty=False)
            out.put(("con", got))

    asyncio.run(go())


def run_raw(n: int, batch: int) -> dict[str, float]:
    queue = f"bench.raw.{uuid.uuid4().hex[:8]}"
    out: Any = mp.Queue()
    ready = mp.Event()
    consumer = mp.Process(target=raw_consumer, args=(queue, n, ready, out))
    consumer.start()
    ready.wait(30)
    publisher = mp.Process(target=raw_publisher, args=(queue, n, batch, out))
    publisher.start()
    results = dict((r[0], r[1:]) for r in (out.get(timeout=300), out.get(timeout=300)))
    publisher.join()
    consumer.join()
    start, sent = results["pub"]
    (got,) = results["con"]
    latencies = [(got[k] - sent[k]) * 1000 for k in sent]
    elapsed = max(got.values()) - start
    return {
        "messages": n,
        "per_second": n / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


# ---------------------------------------------------------------- Koppel outbox → inbox
def writer(db: str, n: int, rate: float, concurrency: int, per_tx: int, out: Any) -> None:
    """Commits ``per_tx`` events per transaction; ``rate`` 0 = as fast as possible."""

    async def go() -> None:
        engine = make_engine(db, concurrency)
        factory = make_session_factory(engine)
        committed: dict[str, float] = {}
        start = time.time()
        counter = iter(range(0, n, per_tx))

        async def work() -> None:
            for i in counter:
                if rate:
                    delay = start + i / rate - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                events = [
                    new_event(Ping(sender="bench", note=str(j)), tenant_id=None) for j in range(i, min(n, i + per_tx))
                ]
                async with UnitOfWork(factory) as uow:
                    await uow.emit(*events)
                    await uow.commit()
                now = time.time()
                committed.update((str(e.id), now) for e in events)

        await asyncio.gather(*(work() for _ in range(concurrency)))
        await engine.dispose()
        out.put(("writer", start, committed))

    asyncio.run(go())


def relay_process(db: str, exchange: str, stop_after: float, out: Any) -> None:
    async def go() -> None:
        engine = make_engine(db, 4)
        broker = Broker(AMQP, exchange)
        await broker.connect()
        relay = OutboxRelay(make_session_factory(engine), broker, asyncpg_dsn(db), batch_size=200, poll_seconds=1.0)
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(stop_after, stop.set)
        task = asyncio.create_task(relay.run(stop))
        await task
        await broker.close()
        await engine.dispose()

    asyncio.run(go())


def consumer_process(db: str, exchange: str, prefix: str, n: int, with_effect: bool, ready: Any, out: Any) -> None:
    async def go() -> None:
        engine = make_engine(db, 16)
        factory = make_session_factory(engine)
        broker = Broker(AMQP, exchange)
        await broker.connect()
        handled: dict[str, float] = {}
        done = asyncio.Event()

        async def effect(envelope: Envelope, data: Ping, uow: UnitOfWork) -> None:
            if with_effect:
                await uow.session.execute(sa.insert(effects).values(event_id=envelope.id, handled_at=time.time()))

        def observe(event_id: str) -> None:
            handled[event_id] = time.time()  # after the inbox commit and the ack
            if len(handled) >= n:
                done.set()

        spec = QueueSpec("bench", "events", ("system.ping",), prefix=prefix, queue_type="quorum")
        consumer = InboxConsumer(broker, factory, spec, {"system.ping": effect}, prefetch=PREFETCH, observer=observe)
        await consumer.start()
        ready.set()
        await done.wait()
        await consumer.stop()
        ch = await broker.new_channel()
        for name in [spec.name, *(spec.retry_name(d) for d in spec.delays_ms), spec.dead_letter_name]:
            await ch.queue_delete(name)
        await ch.exchange_delete(exchange)
        await ch.exchange_delete(exchange + ".unrouted")
        await ch.queue_delete(exchange + ".unrouted")
        await broker.close()
        await engine.dispose()
        out.put(("consumer", handled))

    asyncio.run(go())


async def prepare_db(db: str) -> None:
    await ensure_database(db)
    engine = make_engine(db, 1)
    async with engine.begin() as conn:
        await conn.run_sync(messaging_metadata.create_all)
        await conn.run_sync(effects.metadata.create_all)
    await engine.dispose()


def run_koppel(n: int, rate: float, concurrency: int, per_tx: int = 1, with_effect: bool = True) -> dict[str, float]:
    tag = uuid.uuid4().hex[:8]
    db = f"{PG}/bench_outbox_{tag}"
    exchange = f"bench.{tag}.events"
    asyncio.run(prepare_db(db))
    out: Any = mp.Queue()
    ready = mp.Event()
    try:
        consumer = mp.Process(target=consumer_process, args=(db, exchange, f"bench.{tag}.", n, with_effect, ready, out))
        consumer.start()
        ready.wait(60)
        budget = (n / rate if rate else 0) + 120
        relay = mp.Process(target=relay_process, args=(db, exchange, budget, out))
        relay.start()
        time.sleep(1.0)  # relay connected and listening
        w = mp.Process(target=writer, args=(db, n, rate, concurrency, per_tx, out))
        w.start()
        results = dict((r[0], r[1:]) for r in (out.get(timeout=budget + 60), out.get(timeout=budget + 60)))
        w.join()
        consumer.join()
        relay.terminate()
        relay.join()
    finally:
        asyncio.run(drop_database(db))
    start, committed = results["writer"]
    (handled,) = results["consumer"]
    latencies = [(handled[k] - committed[k]) * 1000 for k in committed if k in handled]
    elapsed = max(handled.values()) - start
    return {
        "events": n,
        "events_per_transaction": per_tx,
        "handler_writes_a_row": with_effect,
        "handled": len(handled),
        "per_second": n / elapsed,
        "writer_per_second": n / (max(committed.values()) - start),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", type=int, default=4, help="concurrent writer transactions")
    args = parser.parse_args()
    mp.set_start_method("spawn")

    raw_sequential = run_raw(args.events // 4, batch=1)
    raw_batched = run_raw(args.events, batch=200)
    # A feed page or a bulk import commits many events at once; an API request commits one.
    throughput = run_koppel(args.events, rate=0, concurrency=args.writers, per_tx=20)
    # The path itself: the inbox row is the consumer's only write (a handler's own statements are
    # the service's work, not the path's).
    path_only = run_koppel(args.events, rate=0, concurrency=args.writers, per_tx=20, with_effect=False)
    single = run_koppel(args.events // 4, rate=0, concurrency=args.writers, per_tx=1)
    paced = run_koppel(int(args.rate * args.seconds), rate=args.rate, concurrency=args.writers)

    figures = {
        "raw_confirm_each": raw_sequential,
        "raw_confirm_batched": raw_batched,
        "koppel_throughput": throughput,
        "koppel_throughput_path_only": path_only,
        "koppel_throughput_one_event_per_transaction": single,
        f"koppel_paced_{int(args.rate)}_per_s": paced,
        "ratio_vs_raw_confirm_each": throughput["per_second"] / raw_sequential["per_second"],
        "ratio_vs_raw_confirm_batched": throughput["per_second"] / raw_batched["per_second"],
        "ratio_path_only_vs_raw_confirm_batched": path_only["per_second"] / raw_batched["per_second"],
        "targets": {
            "ratio_vs_raw_at_least": 0.5,
            "p99_ms_at_300_per_s_at_most": 100,
        },
    }
    path = write_result(
        "outbox_inbox",
        figures,
        notes="queue type quorum; writer, relay and consumer in separate processes. The like-for-like reference is "
        "raw_confirm_batched: the relay too has a whole batch of publishes in flight and awaits their confirms "
        "together; raw_confirm_each waits for every confirm in turn (latency-bound) and is kept for comparison.",
    )

    def line(label: str, f: dict[str, float]) -> None:
        print(f"{label:40} {f['per_second']:8.0f}/s   p50 {f['p50_ms']:7.1f} ms   p99 {f['p99_ms']:7.1f} ms")

    line("raw aio-pika, confirm each publish", raw_sequential)
    line("raw aio-pika, confirms in batches", raw_batched)
    line("outbox → inbox, 20 events/transaction", throughput)
    line("outbox → inbox, path only (no effect row)", path_only)
    line("outbox → inbox, 1 event/transaction", single)
    line(f"outbox → inbox, paced at {args.rate:.0f}/s", paced)
    print(
        f"ratio to raw: {figures['ratio_vs_raw_confirm_each']:.2f} (confirm each), "
        f"{figures['ratio_vs_raw_confirm_batched']:.2f} (confirms in batches), "
        f"path only {figures['ratio_path_only_vs_raw_confirm_batched']:.2f} (confirms in batches)"
    )
    print(f"written to {path}")


if __name__ == "__main__":
    main()
