"""koppel_shared.loops.woken against the real PostgreSQL: a NOTIFY on any of its channels, or its
own wake event, runs the work long before the poll interval."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg

from koppel_shared.db import asyncpg_dsn
from koppel_shared.loops import Backoff, woken
from koppel_shared.testing.waiting import eventually

POLL = 60.0  # far longer than any wait below: a run after a wake-up is the wake-up's doing


@asynccontextmanager
async def looping(
    dsn: str, channels: str | list[str], work: Callable[[], Awaitable[None]], **kw: object
) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(woken("test.woken", channels, work, stop, dsn=dsn, poll=POLL, **kw))  # type: ignore[arg-type]
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10.0)  # stop also ends the LISTEN connection


async def notify(dsn: str, channel: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_notify($1, '')", channel)
    finally:
        await conn.close()


async def settled(runs: list[float], count: int) -> None:
    """Until ``count`` runs happened and no other follows soon after."""

    async def reached() -> bool:
        return len(runs) >= count

    await eventually(reached, within=10.0)
    await asyncio.sleep(0.3)
    assert len(runs) == count


async def test_a_notify_on_either_channel_runs_the_work_early(database_url: str):
    dsn = asyncpg_dsn(database_url)
    runs: list[float] = []

    async def work() -> None:
        runs.append(asyncio.get_running_loop().time())

    async with looping(dsn, ["test_loops_a", "test_loops_b"], work):
        # the first run, and the one that each (re)connect of the listener causes
        await eventually(lambda: _at_least(runs, 1), within=10.0)
        await asyncio.sleep(0.5)
        idle = len(runs)
        await notify(dsn, "test_loops_a")
        await settled(runs, idle + 1)
        await notify(dsn, "test_loops_b")
        await settled(runs, idle + 2)
        await notify(dsn, "some_other_channel")
        await asyncio.sleep(0.5)
        assert len(runs) == idle + 2


async def test_its_own_wake_event_runs_the_work_early_and_stop_is_prompt(database_url: str):
    dsn = asyncpg_dsn(database_url)
    runs: list[float] = []
    wake = asyncio.Event()

    async def work() -> None:
        runs.append(asyncio.get_running_loop().time())

    async with looping(dsn, "test_loops_c", work, wake=wake):
        await eventually(lambda: _at_least(runs, 1), within=10.0)
        await asyncio.sleep(0.5)
        idle = len(runs)
        wake.set()  # e.g. a finished delivery
        await settled(runs, idle + 1)


async def test_a_failing_run_backs_off_and_a_later_notify_finds_the_loop_alive(database_url: str):
    dsn = asyncpg_dsn(database_url)
    outcomes = ["fail", "fail"]
    runs: list[str] = []

    async def work() -> None:
        outcome = outcomes.pop(0) if outcomes else "ok"
        runs.append(outcome)
        if outcome == "fail":
            raise ConnectionError("database away")

    async with looping(dsn, "test_loops_d", work, backoff=Backoff(first=0.05, cap=0.1)):
        await eventually(lambda: _at_least(runs, 3), within=10.0)
        assert runs[:3] == ["fail", "fail", "ok"]
        await asyncio.sleep(0.5)
        idle = len(runs)
        await notify(dsn, "test_loops_d")
        await eventually(lambda: _at_least(runs, idle + 1), within=10.0)


async def _at_least(runs: list[object], n: int) -> bool:
    return len(runs) >= n
