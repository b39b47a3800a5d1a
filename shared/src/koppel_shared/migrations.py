"""Per-service Alembic: the shared ``env.py`` body, creating the database when it is missing, and
running ``upgrade head`` from code (the ``migrate`` command and the test fixtures)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from koppel_shared.db import asyncpg_dsn


async def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if it does not exist. True if it was created."""
    parsed = make_url(url)
    name = parsed.database
    admin = asyncpg_dsn(parsed.set(database="postgres").render_as_string(hide_password=False))
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # Another process created it between our look and our CREATE (two creates at once
            # collide on the catalogue's unique index rather than as "already exists").
            return False
        return True
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    parsed = make_url(url)
    admin = asyncpg_dsn(parsed.set(database="postgres").render_as_string(hide_password=False))
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    finally:
        await conn.close()


def _alembic_config(migrations_dir: Path, url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["database_url"] = url
    return cfg


def upgrade(migrations_dir: Path, url: str, revision: str = "head") -> None:
    """Run ``alembic upgrade`` (blocking; call it from a thread when inside an event loop)."""
    from alembic import command

    command.upgrade(_alembic_config(migrations_dir, url), revision)


# One key for every service: each service has its own database, and advisory locks are per database.
MIGRATE_LOCK_KEY = 0x6B6F7070656C  # "koppel"


async def migrate(migrations_dir: Path, url: str) -> None:
    """Create the database if missing and upgrade it to head. Runs that overlap (a Job retried, two
    replicas started by hand) take turns on an advisory lock, so Alembic never runs twice at once."""
    await ensure_database(url)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATE_LOCK_KEY)
        try:
            await asyncio.to_thread(upgrade, migrations_dir, url)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATE_LOCK_KEY)
    finally:
        await conn.close()


def head_revisions(migrations_dir: Path, url: str) -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(_alembic_config(migrations_dir, url)).get_heads())


async def applied_revisions(url: str) -> set[str]:
    """The revisions recorded in the database; empty when it or its version table is missing."""
    try:
        conn = await asyncpg.connect(asyncpg_dsn(url))
    except asyncpg.InvalidCatalogNameError:
        return set()
    try:
        rows = await conn.fetch("SELECT version_num FROM alembic_version")
    except asyncpg.UndefinedTableError:
        return set()
    finally:
        await conn.close()
    return {row["version_num"] for row in rows}


async def wait_until_migrated(migrations_dir: Path, url: str, within: float, interval: float = 2.0) -> bool:
    """True once the database is at this code's head (what a container waits for before it starts
    the API or worker), False when ``within`` seconds pass first."""
    heads = head_revisions(migrations_dir, url)
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            if await applied_revisions(url) == heads:
                return True
        except (OSError, asyncpg.PostgresError):
            pass  # the database is not up yet: keep waiting
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(interval)


def run_env(target_metadata: Sequence[sa.MetaData], default_url: Callable[[], str]) -> None:
    """The body of every service's ``migrations/env.py``."""
    from alembic import context
    from sqlalchemy.ext.asyncio import create_async_engine

    config = context.config
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url") or default_url()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=list(target_metadata), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    def do_run(connection: sa.Connection) -> None:
        context.configure(connection=connection, target_metadata=list(target_metadata), compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=sa.pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())
