"""koppel_shared.loops with real asyncio: stop, repeat-at-once, failures and their backoff."""

from __future__ import annotations

import asyncio
import itertools

from structlog.testing import capture_logs

from koppel_shared.loops import Backoff, periodic
from koppel_shared.metrics import LOOP_FAILURES


def test_backoff_doubles_up_to_its_cap():
    b = Backoff(first=0.5, cap=3.0)
    delays = [b.after(None)]
    for _ in range(4):
        delays.append(b.after(delays[-1]))
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]


async def test_stop_ends_a_long_sleep_promptly():
    stop = asyncio.Event()
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1
        stop_soon()

    def stop_soon() -> None:
        asyncio.get_running_loop().call_later(0.05, stop.set)

    loop = asyncio.create_task(periodic("test.stop", 3600.0, work, stop))
    await asyncio.wait_for(loop, timeout=5.0)  # an hour's interval, ended by stop
    assert runs == 1


async def test_a_set_stop_runs_nothing_and_wait_first_waits_before_the_first_run():
    stop = asyncio.Event()
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1

    stop.set()
    await asyncio.wait_for(periodic("test.stopped", 0.01, work, stop), timeout=5.0)
    assert runs == 0

    stop = asyncio.Event()
    loop = asyncio.create_task(periodic("test.wait_first", 3600.0, work, stop, wait_first=True))
    await asyncio.sleep(0.2)
    assert runs == 0  # still in its first sleep
    stop.set()
    await asyncio.wait_for(loop, timeout=5.0)
    assert runs == 0


async def test_work_that_says_more_is_waiting_runs_again_without_sleeping():
    stop = asyncio.Event()
    results = [True, True, True, None]
    runs = 0

    async def work() -> bool | None:
        nonlocal runs
        runs += 1
        return results.pop(0) if results else None

    loop = asyncio.create_task(periodic("test.more", 3600.0, work, stop))
    for _ in range(100):
        if runs >= 4:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(loop, timeout=5.0)
    assert runs == 4  # three "more" answers, then the interval (an hour)


async def test_a_failing_run_is_logged_counted_and_the_loop_goes_on():
    stop = asyncio.Event()
    runs = 0
    before = LOOP_FAILURES.labels("test.failing")._value.get()

    async def work() -> None:
        nonlocal runs
        runs += 1
        if runs <= 2:
            raise RuntimeError(f"database away ({runs})")
        stop.set()

    with capture_logs() as logs:
        await asyncio.wait_for(periodic("test.failing", 0.01, work, stop), timeout=5.0)
    assert runs == 3
    failed = [e for e in logs if e["event"] == "loop.failed"]
    assert [(e["loop"], e["error"]) for e in failed] == [
        ("test.failing", "RuntimeError('database away (1)')"),
        ("test.failing", "RuntimeError('database away (2)')"),
    ]
    assert LOOP_FAILURES.labels("test.failing")._value.get() == before + 2


async def test_backoff_grows_with_failures_in_a_row_and_resets_after_a_success():
    stop = asyncio.Event()
    # fail four times, succeed once, fail once more, then stop
    script = ["fail", "fail", "fail", "fail", "ok", "fail", "stop"]
    loop_time = asyncio.get_running_loop().time
    started: list[float] = []

    async def work() -> bool:
        started.append(loop_time())
        step = script.pop(0)
        if step == "fail":
            raise ConnectionError("refused")
        if step == "stop":
            stop.set()
        return True  # more waiting: no interval sleep between the runs, only the backoff

    with capture_logs() as logs:
        await asyncio.wait_for(
            periodic("test.backoff", 3600.0, work, stop, backoff=Backoff(first=0.02, cap=0.08)), timeout=10.0
        )
    pauses = [e["retry_in"] for e in logs if e["event"] == "loop.failed"]
    assert pauses == [0.02, 0.04, 0.08, 0.08, 0.02]
    # the pauses were really slept (a lower bound only: the machine may be slow, never early)
    gaps = [b - a for a, b in itertools.pairwise(started)]
    for gap, pause in zip(gaps, [0.02, 0.04, 0.08, 0.08, 0.0, 0.02], strict=True):
        assert gap >= pause * 0.9
