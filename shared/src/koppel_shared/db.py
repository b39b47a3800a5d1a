"""Database access: engine and session factory built from settings, and the unit of work.

The unit of work rolls back unless ``commit()`` was called, so a handler that raises half-way
never leaves a partial change behind; events emitted through it land in the outbox table in the
same transaction as the state change.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    from koppel_shared.events.envelope import Envelope


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


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

    async def emit(self, *events: Envelope) -> None:
        """Write events to the outbox in this transaction; they are published only if it commits."""
        from koppel_shared.messaging.outbox import add_to_outbox

        await add_to_outbox(self.session, *events)

    async def commit(self) -> None:
        await self.session.commit()
        self._committed = True

    async def rollback(self) -> None:
        await self.session.rollback()
