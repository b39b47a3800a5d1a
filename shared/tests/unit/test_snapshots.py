"""A sandbox's records kept in a file: saved after changes and at stop, loaded at start, and an
unreadable file set aside rather than silently replaced."""

from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from koppel_shared.snapshots import Snapshot, keep_app_state


def counter_app(path: Path) -> FastAPI:
    snapshot = Snapshot(path, interval=0.05)
    loaded = snapshot.load()
    app = FastAPI()
    app.state.records = loaded if isinstance(loaded, dict) else {"hits": 0}

    @app.post("/hit")
    async def hit() -> dict[str, int]:
        app.state.records["hits"] += 1
        return app.state.records

    keep_app_state(app, snapshot, lambda: app.state.records)
    return app


async def hits(app: FastAPI, times: int) -> int:
    transport = httpx.ASGITransport(app=app)
    async with LifespanManager(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        last = 0
        for _ in range(times):
            last = (await client.post("/hit")).json()["hits"]
        return last


async def test_records_survive_a_stop_and_a_start(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sandbox.pickle"
    assert await hits(counter_app(path), 3) == 3
    assert await hits(counter_app(path), 2) == 5, "the second start carries on from the first"


async def test_changes_are_written_while_running_not_only_at_stop(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "sandbox.pickle"
    app = counter_app(path)
    transport = httpx.ASGITransport(app=app)
    async with LifespanManager(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.post("/hit")
        for _ in range(100):
            if path.exists():
                break
            await asyncio.sleep(0.02)
        # What a killed process leaves behind: the snapshot written in the background.
        assert Snapshot(path).load() == {"hits": 1}


def test_an_unreadable_file_is_set_aside_and_the_sandbox_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.pickle"
    path.write_bytes(b"not a pickle")
    snapshot = Snapshot(path)
    assert snapshot.load() is None
    assert snapshot.set_aside is not None and snapshot.set_aside.read_bytes() == b"not a pickle"
    assert not path.exists()


def test_a_save_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.pickle"
    snapshot = Snapshot(path)
    snapshot.save({"a": 1})
    snapshot.save({"b": 2})
    assert Snapshot(path).load() == {"b": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["sandbox.pickle"], "no temporary file left"
