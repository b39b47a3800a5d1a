"""Storing the mandates Twikey's feed names that Koppel did not create (the operator's
"unclaimed mandates" list): each with the feed messages as received, so that adopting one
replays them in order exactly as if they had been applied when they came."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import date, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from koppel_shared.db import UnitOfWork
from mandate_svc.adapters.orm import unclaimed_mandates
from mandate_svc.domain.model import FeedMessage

OPEN, ADOPTED, IGNORED = "open", "adopted", "ignored"
_DATES = {"signature_date"}
_TIMES = {"event_time"}


def message_to_json(message: FeedMessage) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date | datetime) else v for k, v in asdict(message).items()}


def message_from_json(data: dict[str, Any]) -> FeedMessage:
    known = {f.name for f in fields(FeedMessage)}
    values = {k: v for k, v in data.items() if k in known}
    for name in _TIMES & values.keys():
        values[name] = datetime.fromisoformat(values[name])
    for name in _DATES & values.keys():
        if values[name] is not None:
            values[name] = date.fromisoformat(values[name])
    return FeedMessage(**values)


@dataclass(frozen=True)
class Unclaimed:
    tenant_id: str
    mandate_number: str
    status: str
    messages: list[FeedMessage]
    mandate_id: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    decided_at: datetime | None


def _from_row(row: Any) -> Unclaimed:
    messages = sorted((message_from_json(m) for m in row.messages), key=lambda m: m.order)
    return Unclaimed(
        tenant_id=str(row.tenant_id),
        mandate_number=row.mandate_number,
        status=row.status,
        messages=messages,
        mandate_id=str(row.mandate_id) if row.mandate_id else None,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        decided_at=row.decided_at,
    )


async def record(session: AsyncSession, tenant_id: str, message: FeedMessage, now: datetime) -> None:
    """Add a feed message to the mandate's entry (made open on its first message). A message
    already recorded (a replay) changes nothing."""
    as_json = message_to_json(message)
    stmt = insert(unclaimed_mandates).values(
        tenant_id=tenant_id,
        mandate_number=message.mandate_number,
        status=OPEN,
        messages=[as_json],
        first_seen_at=now,
        last_seen_at=now,
    )
    table = unclaimed_mandates.c
    seen = table.messages.contains([{"twikey_event_id": message.twikey_event_id}])
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["tenant_id", "mandate_number"],
            set_={
                "messages": sa.case((seen, table.messages), else_=table.messages.concat(stmt.excluded.messages)),
                "last_seen_at": sa.case((seen, table.last_seen_at), else_=stmt.excluded.last_seen_at),
            },
        )
    )


async def get(session: AsyncSession, tenant_id: str, number: str, lock: bool = False) -> Unclaimed | None:
    query = sa.select(unclaimed_mandates).where(
        unclaimed_mandates.c.tenant_id == tenant_id, unclaimed_mandates.c.mandate_number == number
    )
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return _from_row(row) if row else None


async def list_by_status(session: AsyncSession, tenant_id: str, status: str, limit: int) -> list[Unclaimed]:
    rows = await session.execute(
        sa.select(unclaimed_mandates)
        .where(unclaimed_mandates.c.tenant_id == tenant_id, unclaimed_mandates.c.status == status)
        .order_by(unclaimed_mandates.c.first_seen_at, unclaimed_mandates.c.mandate_number)
        .limit(limit)
    )
    return [_from_row(r) for r in rows]


async def decide(
    session: AsyncSession, tenant_id: str, number: str, status: str, now: datetime, mandate_id: str | None = None
) -> None:
    await session.execute(
        sa.update(unclaimed_mandates)
        .where(unclaimed_mandates.c.tenant_id == tenant_id, unclaimed_mandates.c.mandate_number == number)
        .values(status=status, decided_at=now, mandate_id=mandate_id)
    )


class UnclaimedRepository(Protocol):
    """Unclaimed mandates as the use cases use them (SQL here, a dict in the unit tests' fakes)."""

    async def record(self, tenant_id: str, message: FeedMessage, now: datetime) -> None: ...
    async def get(self, tenant_id: str, number: str, lock: bool = False) -> Unclaimed | None: ...
    async def list_by_status(self, tenant_id: str, status: str, limit: int) -> list[Unclaimed]: ...
    async def decide(
        self, tenant_id: str, number: str, status: str, now: datetime, mandate_id: str | None = None
    ) -> None: ...


class SqlUnclaimedRepository:
    """``UnclaimedRepository`` on a unit of work's session: the functions above."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, tenant_id: str, message: FeedMessage, now: datetime) -> None:
        await record(self.session, tenant_id, message, now)

    async def get(self, tenant_id: str, number: str, lock: bool = False) -> Unclaimed | None:
        return await get(self.session, tenant_id, number, lock)

    async def list_by_status(self, tenant_id: str, status: str, limit: int) -> list[Unclaimed]:
        return await list_by_status(self.session, tenant_id, status, limit)

    async def decide(
        self, tenant_id: str, number: str, status: str, now: datetime, mandate_id: str | None = None
    ) -> None:
        await decide(self.session, tenant_id, number, status, now, mandate_id)


def of(uow: UnitOfWork) -> UnclaimedRepository:
    """The unit of work's unclaimed-mandate repository."""
    return uow.repository(SqlUnclaimedRepository)
