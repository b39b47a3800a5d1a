"""The migrate Job and the containers' wait-migrated init step, on the real PostgreSQL: overlapping
migrations take turns, and a container waits until the schema is at its code's head."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from koppel_shared.migrations import applied_revisions, drop_database, head_revisions, wait_until_migrated
from koppel_shared.testing.fixtures import PG_BASE, unique_name
from mandate_svc.bootstrap import definition


async def test_two_migrations_at_once_both_succeed_and_leave_one_head() -> None:
    url = f"{PG_BASE}/{unique_name('migrate')}"
    env = {**os.environ, "KOPPEL_MANDATE_DATABASE_URL": url, "KOPPEL_ENVIRONMENT": "dev"}
    try:
        assert not await wait_until_migrated(definition.migrations_dir, url, within=0.5, interval=0.1)

        async def migrate() -> int:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mandate_svc", "migrate", env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            _, err = await process.communicate()
            assert process.returncode == 0, err.decode()[-2000:]
            return process.returncode

        waiter = asyncio.create_task(wait_until_migrated(definition.migrations_dir, url, within=120, interval=0.2))
        assert await asyncio.gather(migrate(), migrate()) == [0, 0]
        assert await waiter
        assert await applied_revisions(url) == head_revisions(definition.migrations_dir, url)
    finally:
        await drop_database(url)


def test_wait_migrated_gives_up_with_a_message_when_nobody_migrates() -> None:
    url = f"{PG_BASE}/{unique_name('nomigrate')}"
    env = {**os.environ, "KOPPEL_MANDATE_DATABASE_URL": url, "KOPPEL_ENVIRONMENT": "dev"}
    done = subprocess.run([sys.executable, "-m", "mandate_svc", "wait-migrated", "--timeout", "1"], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    assert "run migrate" in done.stderr
