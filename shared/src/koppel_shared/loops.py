"""A worker's background loops, in two shapes:

- :func:`periodic`: run ``work``, sleep ``interval``, again (sweeps, cleanups, schedulers);
- :func:`woken`: run ``work`` when a commit sends ``NOTIFY`` on a channel, or at the latest after
  ``poll`` seconds (claims of queued rows: the outbox relay, the booker, the delivery dispatcher).

Both share what every loop needs and nothing else: ``work`` returning True means "more is waiting
right now" and runs it again at once; a failure is logged, counted (``koppel_loop_failures_total``)
and followed by a pause that grows with each failure in a row up to a cap (:class:`Backoff`), and
the next success resets it; every sleep ends as soon as ``stop`` is set. A run in progress is never
interrupted: ``stop`` is honoured between runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from koppel_shared.logging import get_logger
from koppel_shared.metrics import LOOP_FAILURES
from koppel_shared.pgnotify import listen, sleep_or_stop, wait_for_wake

log = get_logger(__name__)

# One run of a loop's work; True = more is waiting now (run again without sleeping).
Work = Callable[[], Awaitable[bool | None]]


@dataclass(frozen=True)
class Backoff:
    """The pause after a failed run: ``first``, then times ``factor`` for each further failure in
    a row, never more than ``cap``."""

    first: float = 0.2
    cap: float = 5.0
    factor: float = 2.0

    def after(self, previous: float | None) -> float:
        """The pause after a failure, given the pause after the one before (None: first in a row)."""
        return self.first if previous is None else min(previous * self.factor, self.cap)


async def periodic(
    name: str,
    interval: float,
    work: Work,
    stop: asyncio.Event,
    *,
    backoff: Backoff | None = None,
    wait_first: bool = False,
) -> None:
    """Run ``work`` every ``interval`` seconds until ``stop``. Without ``backoff`` a failed run is
    tried again after the interval, like any other; ``wait_first`` sleeps before the first run
    (work that should not run at every start of a worker)."""

    async def pause() -> None:
        await sleep_or_stop(stop, interval)

    if wait_first:
        await pause()
    await _run(name, work, stop, pause, backoff, None)


async def woken(
    name: str,
    channels: str | Sequence[str],
    work: Work,
    stop: asyncio.Event,
    *,
    dsn: str,
    poll: float | Callable[[], float],
    backoff: Backoff = Backoff(),  # frozen: one shared default is safe
    wake: asyncio.Event | None = None,
) -> None:
    """Run ``work`` whenever ``NOTIFY`` arrives on one of ``channels``, ``wake`` is set (by the
    loop's own tasks, e.g. a finished delivery), or ``poll`` seconds pass (notifications sent
    while the listening connection is down are lost). ``poll`` may be a function, read before each
    sleep (a loop that knows when its next deferred item falls due). The pause after a failure is
    not cut short by a wake: a burst of commits must not hammer a database that just failed."""
    wake = wake if wake is not None else asyncio.Event()
    listener = asyncio.create_task(listen(dsn, channels, wake, stop))

    async def pause() -> None:
        await wait_for_wake(wake, stop, poll() if callable(poll) else poll)

    try:
        await _run(name, work, stop, pause, backoff, wake)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


async def _run(
    name: str,
    work: Work,
    stop: asyncio.Event,
    pause: Callable[[], Awaitable[None]],
    backoff: Backoff | None,
    wake: asyncio.Event | None,
) -> None:
    delay: float | None = None
    while not stop.is_set():
        if wake is not None:
            # Cleared before the run: a commit notified while it runs must wake the next one.
            wake.clear()
        try:
            more = await work()
        except Exception as exc:  # a database or broker away: the loop goes on
            LOOP_FAILURES.labels(name).inc()
            if backoff is None:
                log.warning("loop.failed", loop=name, error=repr(exc)[:500])
                await pause()
            else:
                delay = backoff.after(delay)
                log.warning("loop.failed", loop=name, error=repr(exc)[:500], retry_in=delay)
                await sleep_or_stop(stop, delay)
            continue
        delay = None
        if not more:
            await pause()
