"""The delivery worker's resolver: one thread per host however many attempts wait for it, and a
caller that gives up does not cancel the look-up for the others."""

from __future__ import annotations

import asyncio
import threading

from notify_svc.adapters.network import SharedLookups


async def test_concurrent_lookups_of_one_host_share_one_thread_and_outlive_a_caller_that_gives_up() -> None:
    release = threading.Event()
    calls: list[str] = []

    def slow_lookup(host: str, port: int) -> list[str]:
        calls.append(host)
        if host == "hangs.example":
            release.wait(10)
        return ["203.0.113.7"]

    lookups = SharedLookups(threads=2, resolve=slow_lookup)
    try:
        waiting = [asyncio.ensure_future(lookups("hangs.example", 443)) for _ in range(8)]
        impatient = asyncio.ensure_future(asyncio.wait_for(lookups("hangs.example", 443), 0.05))
        await asyncio.sleep(0.1)
        assert impatient.done() and isinstance(impatient.exception(), TimeoutError)
        # The second thread is still free for other hosts.
        assert await asyncio.wait_for(lookups("fine.example", 443), 5) == ["203.0.113.7"]
        release.set()
        assert await asyncio.wait_for(asyncio.gather(*waiting), 5) == [["203.0.113.7"]] * 8
        assert calls.count("hangs.example") == 1
    finally:
        release.set()
        lookups.close()
