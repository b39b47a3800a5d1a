"""An in-memory object kept in a file across restarts: loaded at start, written again a moment
after it changed and when the process stops. The sandboxes use it so that `koppel run` stopped and
started again finds Twikey and Twinfield as it left them, as the real services would be.

The file is a pickle written by this process for itself (never read from anywhere else). It is
written atomically (a temporary file, fsync, rename), so a crash leaves the previous snapshot; a
file that cannot be read back (another version of the code) is set aside, never silently lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response


class Snapshot:
    def __init__(self, path: Path, interval: float = 2.0) -> None:
        self.path = path
        self.interval = interval
        self.dirty = False
        self.set_aside: Path | None = None

    def load(self) -> Any | None:
        """The object last saved, or None when there is none (or it could not be read: then the
        file is renamed to ``<name>.unreadable-<time>`` and ``set_aside`` says where)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return pickle.loads(data)  # our own file, written by save()
        except Exception:  # an older or newer shape of the state: keep it for a person to look at
            self.set_aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
            self.path.replace(self.set_aside)
            return None

    def save(self, obj: Any) -> None:
        # Pickled here, on the caller's thread: the state is only consistent between two events
        # of the loop that changes it.
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        self.dirty = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)

    async def keep(self, current: Callable[[], Any]) -> None:
        """Save ``current()`` every ``interval`` seconds while something changed; until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            if self.dirty:
                self.save(current())


def keep_app_state(app: FastAPI, snapshot: Snapshot, current: Callable[[], Any]) -> None:
    """Mark the snapshot changed after every request (a sandbox's reads move feed positions too),
    save it in the background, and once more when the app stops."""

    @app.middleware("http")
    async def mark(request: Request, call_next: Callable[[Request], Any]) -> Response:
        try:
            response: Response = await call_next(request)
            return response
        finally:
            snapshot.dirty = True

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: FastAPI) -> AsyncIterator[Any]:
        task = asyncio.create_task(snapshot.keep(current))
        try:
            async with inner(a) as value:
                yield value
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            snapshot.save(current())

    app.router.lifespan_context = lifespan
