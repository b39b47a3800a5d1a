"""The in-memory unit of work the services' unit tests run their use cases on: it must keep the
outbox's promise (an event counts only when its transaction commits) or those tests lie."""

from __future__ import annotations

import pytest

from koppel_shared.events import new_event
from koppel_shared.events.system import Ping
from koppel_shared.testing.fakes import FakeUnitOfWork


class SqlThings:  # stands for a service's SQL repository class (the key)
    def __init__(self, session: object) -> None:
        raise AssertionError("a fake unit of work never builds the SQL repository")


def ping(note: str):
    return new_event(Ping(sender="test", note=note), tenant_id=None)


async def test_events_count_only_when_their_transaction_commits() -> None:
    uow = FakeUnitOfWork()
    async with uow:
        await uow.emit(ping("kept"))
        await uow.commit()
    async with uow:
        await uow.emit(ping("dropped"))  # the use case raised or returned without committing
    with pytest.raises(RuntimeError):
        async with uow:
            await uow.emit(ping("dropped too"))
            raise RuntimeError("half-way")
    assert [e.data["note"] for e in uow.events] == ["kept"]
    assert (uow.commits, uow.rollbacks) == (1, 2)
    assert uow.types() == ["system.ping"]


async def test_it_answers_the_fake_for_the_repository_asked_for_and_refuses_the_session() -> None:
    fake = object()
    uow = FakeUnitOfWork({SqlThings: fake})
    assert uow.repository(SqlThings) is fake
    assert uow() is uow  # usable where a runtime.uow factory is expected
    with pytest.raises(LookupError):
        uow.repository(dict)
    with pytest.raises(AssertionError):
        _ = uow.session
