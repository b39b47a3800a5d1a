"""Database access: engine and session factory built from settings, and the unit of work.

The unit of work rolls back unless ``commit()`` was called, so a handler that raises half-way
never leaves a partial change behind; events emitted through it land in the outbox table in the
same transaction as the state change.

Use cases reach their tables through repositories taken from the unit of work
(``uow.repository(SqlThings)``: one per unit of work, on its session), so a test can hand them
``koppel_shared.testing.fakes.FakeUnitOfWork`` with in-memory repositories instead.

A pooled connection is checked before use (a database restart must not fail the next
transaction), but cheaply: SQLAlchemy's ``pool_pre_ping`` costs three round trips (BEGIN, a
query, ROLLBACK) on every checkout, more than the work of a small transaction. A connection the
server has closed (restart, terminated backend, idle timeout) is already known closed to asyncpg
without asking; only a connection idle for a while, which a firewall may have dropped without a
word, is pinged for real.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import event
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from koppel_shared.events.envelope import Envelope


R = TypeVar("R")

# A connection unused for longer than this is pinged before use.
PING_AFTER_IDLE_SECONDS = 10.0


def make_engine(url: str, pool_size: int = 10, max_overflow: int | None = None) -> AsyncEngine:
    overflow = pool_size if max_overflow is None else max_overflow
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=overflow)
    event.listen(engine.sync_engine, "checkin", _note_checkin)
    event.listen(engine.sync_engine, "checkout", _check_alive)
    return engine


def _note_checkin(dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _check_alive(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Refuse a dead pooled connection; the pool then replaces it (and every connection older
    than it, since a restart closes them all) and the checkout goes on with a new one."""
    if dbapi_connection.driver_connection.is_closed():
        raise InvalidatePoolError("connection closed by the server")
    checked_in_at = record.info.get("checked_in_at")
    if checked_in_at is not None and time.monotonic() - checked_in_at > PING_AFTER_IDLE_SECONDS:
        try:
            dbapi_connection.ping()  # runs inside SQLAlchemy's greenlet, like pool_pre_ping
        except Exception as exc:
            raise InvalidatePoolError(f"ping failed: {exc!r}") from exc


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def asyncpg_dsn(url: str) -> str:
    """The plain DSN asyncpg wants (for LISTEN/NOTIFY), from an SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class UnitOfWork:
    """One transaction: ``async with UnitOfWork(factory) as uow: ...; await uow.commit()``."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory
        self._committed = False
        self._repositories: dict[Callable[[AsyncSession], Any], Any] = {}
        self.session: AsyncSession

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._factory()
        await self.session.begin()
        self._committed = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._committed:
                await self.session.rollback()
        finally:
            await self.session.close()

    def repository(self, make: Callable[[AsyncSession], R]) -> R:
        """The repository ``make`` builds on this transaction's session, one per unit of work. A
        fake unit of work answers its in-memory repository for the same ``make`` instead."""
        found = self._repositories.get(make)
        if found is None:
            found = self._repositories[make] = make(self.session)
        return cast(R, found)

    async def emit(self, *events: Envelope) -> None:
        """Write events to the outbox in this transaction; they are published only if it commits."""
        from koppel_shared.messaging.outbox import add_to_outbox

        await add_to_outbox(self.session, *events)

    async def commit(self) -> None:
        await self.session.commit()
        self._committed = True

    async def rollback(self) -> None:
        await self.session.rollback()
