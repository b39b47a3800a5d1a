"""An in-memory unit of work for unit tests of use cases, in the manner of cosmicpython's
``FakeUnitOfWork``: no PostgreSQL, no broker.

``FakeUnitOfWork(repositories={SqlThings: FakeThings()})`` answers ``uow.repository(SqlThings)``
with the fake; the service's fakes live in its ``tests/unit/fakes.py``. Like the real one it is an
async context manager that can be entered again and again (``runtime.uow()`` in a loop), and like
the transactional outbox, events count as published only when their transaction commits:
``events`` holds the committed ones, events emitted in a transaction that ends without a commit
are dropped. Repository state is the fakes' own (a rolled-back change is not undone); use cases
that depend on a rollback are for the integration suites.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, cast

from koppel_shared.events.envelope import Envelope

R = TypeVar("R")


class FakeUnitOfWork:
    def __init__(self, repositories: dict[Callable[..., Any], Any] | None = None) -> None:
        self.repositories = dict(repositories or {})
        self.events: list[Envelope] = []  # emitted in a committed transaction
        self.pending: list[Envelope] = []  # emitted in the open transaction
        self.commits = 0
        self.rollbacks = 0
        self._committed = False

    # the runtime's factory: ``runtime.uow()`` and ``async with runtime.uow() as uow``
    def __call__(self) -> FakeUnitOfWork:
        return self

    async def __aenter__(self) -> FakeUnitOfWork:
        self.pending = []
        self._committed = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._committed:
            await self.rollback()

    def repository(self, make: Callable[..., R]) -> R:
        if make not in self.repositories:
            raise LookupError(f"no fake repository for {getattr(make, '__name__', make)!r}")
        return cast(R, self.repositories[make])

    @property
    def session(self) -> Any:
        raise AssertionError("a use case under a fake unit of work reached for the database session")

    async def emit(self, *events: Envelope) -> None:
        self.pending.extend(events)

    async def commit(self) -> None:
        self.events.extend(self.pending)
        self.pending = []
        self.commits += 1
        self._committed = True

    async def rollback(self) -> None:
        self.pending = []
        self.rollbacks += 1

    def types(self) -> list[str]:
        """The committed events' types, in order."""
        return [e.type for e in self.events]
