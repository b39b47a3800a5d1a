"""The worker's loops: the scheduler submits due collections until none are due, then waits for a
commit that makes one due (NOTIFY) or its interval; the applier applies staged Twikey transaction
messages in bulk. Several worker replicas run both side by side; ``FOR UPDATE SKIP LOCKED`` makes
them claim disjoint rows."""

from __future__ import annotations

import asyncio

from collection_svc.service_layer.engine import submit_due
from collection_svc.service_layer.records import DUE_CHANNEL, Clock
from collection_svc.service_layer.transactions import APPLY_BATCH, apply_twikey_updates
from collection_svc.settings import Settings
from koppel_shared.db import asyncpg_dsn
from koppel_shared.loops import Backoff, periodic, woken
from koppel_shared.service import Loop, Runtime


def scheduler_loop(runtime: Runtime[Settings], clock: Clock) -> Loop:
    settings = runtime.settings
    interval = settings.scheduler_interval_seconds
    batch = settings.scheduler_batch_size

    async def submit() -> bool:
        # A full batch: more may be due right now. The database away: try again after the interval.
        return await submit_due(runtime.session_factory, clock(), batch) >= batch

    async def run(stop: asyncio.Event) -> None:
        # Woken when a commit makes a collection due now (records.DUE_CHANNEL); the interval
        # catches collections that fall due with the date and NOTIFYs lost while disconnected.
        await woken(
            "collection.scheduler", DUE_CHANNEL, submit, stop,
            dsn=asyncpg_dsn(settings.database_url), poll=interval,
        )  # fmt: skip

    return run


def applier_loop(runtime: Runtime[Settings], clock: Clock) -> Loop:
    idle = runtime.settings.applier_interval_seconds

    async def apply() -> bool:
        return await apply_twikey_updates(runtime.session_factory, clock, APPLY_BATCH) >= APPLY_BATCH

    async def run(stop: asyncio.Event) -> None:
        # The applier polls often; the database away, the messages stay staged and it waits
        # longer between tries instead of failing five times a second.
        await periodic("collection.applier", idle, apply, stop, backoff=Backoff(first=2.0, cap=2.0))

    return run
