"""Wake a loop when another transaction commits: PostgreSQL ``LISTEN``/``NOTIFY``.

A writer calls ``pg_notify(channel, '')`` inside its transaction (delivered only if it commits);
the loop keeps a ``LISTEN`` connection open through :func:`listen` and waits on an
:class:`asyncio.Event`. Notifications sent while the connection is down are lost, so every
(re)connect wakes the loop once, and loops keep a slow poll as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg

from koppel_shared.logging import get_logger

log = get_logger(__name__)


async def listen(dsn: str, channel: str | Sequence[str], wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Set ``wake`` on every notification on ``channel`` (or any of several) until ``stop`` is set."""
    channels = [channel] if isinstance(channel, str) else list(channel)
    while not stop.is_set():
        conn: Any = None
        try:
            conn = await asyncpg.connect(dsn)
            lost = asyncio.Event()
            conn.add_termination_listener(lambda *_, lost=lost: lost.set())
            for name in channels:
                await conn.add_listener(name, lambda *_: wake.set())
            wake.set()
            await first(lost.wait(), stop.wait())
        except Exception as exc:
            log.warning("pgnotify.listen_error", channel=",".join(channels), error=repr(exc))
            await sleep_or_stop(stop, 1.0)
        finally:
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)


async def wait_for_wake(wake: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    """Until woken, stopped, or ``seconds`` have passed."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(first(wake.wait(), stop.wait()), seconds)


async def first(*aws: Any) -> None:
    """Until the first of these awaitables finishes; the others are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
