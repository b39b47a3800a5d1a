"""Loading and saving mandates (SQLAlchemy Core on the unit of work's session). Every query is
scoped to one tenant: another tenant's mandate simply does not exist here."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
from mandate_svc.adapters.orm import idempotency_keys, mandate_history, mandates
from mandate_svc.domain.model import Mandate, Status

_FIELDS = tuple(f.name for f in fields(Mandate))


def _to_row(m: Mandate) -> dict[str, Any]:
    row = {name: getattr(m, name) for name in _FIELDS}
    row["base_status"] = m.base_status.value
    row["status"] = m.status.value
    return row


def _from_row(row: Any) -> Mandate:
    values = {name: row._mapping[name] for name in _FIELDS}
    values["id"] = str(values["id"])
    values["tenant_id"] = str(values["tenant_id"])
    values["base_status"] = Status(values["base_status"])
    return Mandate(**values)


async def get(session: AsyncSession, tenant_id: str, mandate_id: str, lock: bool = False) -> Mandate | None:
    try:
        uuid.UUID(mandate_id)
    except ValueError:
        return None
    query = sa.select(mandates).where(mandates.c.tenant_id == tenant_id, mandates.c.id == mandate_id)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return _from_row(row) if row else None


async def get_by_number(session: AsyncSession, tenant_id: str, number: str, lock: bool = False) -> Mandate | None:
    query = sa.select(mandates).where(mandates.c.tenant_id == tenant_id, mandates.c.mandate_number == number)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    return _from_row(row) if row else None


async def add(session: AsyncSession, m: Mandate) -> None:
    await session.execute(sa.insert(mandates).values(**_to_row(m)))


async def add_if_number_unseen(session: AsyncSession, m: Mandate) -> bool:
    """Insert a mandate first known by its Twikey number; False if a concurrent consumer won."""
    stmt = (
        insert(mandates)
        .values(**_to_row(m))
        .on_conflict_do_nothing(
            index_elements=["tenant_id", "mandate_number"], index_where=sa.text("mandate_number IS NOT NULL")
        )
        .returning(mandates.c.id)
    )
    return (await session.execute(stmt)).first() is not None


async def save(session: AsyncSession, m: Mandate) -> None:
    row = _to_row(m)
    del row["id"], row["tenant_id"]
    await session.execute(
        sa.update(mandates).where(mandates.c.tenant_id == m.tenant_id, mandates.c.id == m.id).values(**row)
    )


async def remove(session: AsyncSession, tenant_id: str, mandate_id: str) -> None:
    await session.execute(
        sa.delete(idempotency_keys).where(
            idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.mandate_id == mandate_id
        )
    )
    await session.execute(sa.delete(mandates).where(mandates.c.tenant_id == tenant_id, mandates.c.id == mandate_id))


@dataclass(frozen=True)
class Page:
    items: list[Mandate]
    next_cursor: str | None


def encode_cursor(created_at: datetime, mandate_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{mandate_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError for a cursor we did not hand out."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    stamp, _, mandate_id = raw.partition("|")
    created = datetime.fromisoformat(stamp)
    uuid.UUID(mandate_id)
    if created.tzinfo is None:
        raise ValueError("cursor time without zone")
    return created, mandate_id


async def list_page(
    session: AsyncSession,
    tenant_id: str,
    *,
    statuses: list[str] | None = None,
    customer_number: str | None = None,
    scheme: str | None = None,
    search: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """Newest first; the cursor is the (created_at, id) of the last item of the previous page.
    ``search`` is a customer or mandate number (exact) or part of the debtor's or company's name."""
    query = sa.select(mandates).where(mandates.c.tenant_id == tenant_id)
    if search:
        query = query.where(
            sa.or_(
                mandates.c.customer_number == search,
                mandates.c.mandate_number == search,
                mandates.c.name.icontains(search, autoescape=True),
                mandates.c.company_name.icontains(search, autoescape=True),
            )
        )
    if statuses:
        query = query.where(mandates.c.status.in_(statuses))
    if customer_number is not None:
        query = query.where(mandates.c.customer_number == customer_number)
    if scheme is not None:
        query = query.where(mandates.c.scheme == scheme)
    if cursor is not None:
        created, last_id = decode_cursor(cursor)
        after = sa.tuple_(
            sa.literal(created, type_=mandates.c.created_at.type), sa.literal(last_id, type_=mandates.c.id.type)
        )
        query = query.where(sa.tuple_(mandates.c.created_at, mandates.c.id) < after)
    query = query.order_by(mandates.c.created_at.desc(), mandates.c.id.desc()).limit(limit + 1)
    rows = (await session.execute(query)).all()
    items = [_from_row(r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page(items, encode_cursor(items[-1].created_at, items[-1].id) if more and items else None)


async def count_by_status(session: AsyncSession, tenant_id: str) -> dict[str, tuple[int, datetime]]:
    """Per status: how many, and when the oldest of them was created."""
    query = sa.select(mandates.c.status, sa.func.count(), sa.func.min(mandates.c.created_at)).where(
        mandates.c.tenant_id == tenant_id
    )
    rows = (await session.execute(query.group_by(mandates.c.status))).all()
    return {status: (count, oldest) for status, count, oldest in rows}


async def record_history(session: AsyncSession, tenant_id: str, mandate_id: str, event: Envelope) -> None:
    data = event.data
    await session.execute(
        sa.insert(mandate_history).values(
            tenant_id=tenant_id,
            mandate_id=mandate_id,
            event_id=str(event.id),
            type=event.type,
            status=data.get("status"),
            action=data.get("action"),
            reason=data.get("reason"),
            occurred_at=event.occurred_at,
        )
    )


async def history(session: AsyncSession, tenant_id: str, mandate_id: str) -> list[dict[str, Any]]:
    """What happened to the mandate, oldest first."""
    query = (
        sa.select(
            mandate_history.c.type,
            mandate_history.c.occurred_at,
            mandate_history.c.status,
            mandate_history.c.action,
            mandate_history.c.reason,
        )
        .where(mandate_history.c.tenant_id == tenant_id, mandate_history.c.mandate_id == mandate_id)
        .order_by(mandate_history.c.seq)
    )
    return [dict(r._mapping) for r in (await session.execute(query)).all()]


async def for_customer(session: AsyncSession, tenant_id: str, customer_number: str) -> list[Mandate]:
    query = (
        sa.select(mandates)
        .where(mandates.c.tenant_id == tenant_id, mandates.c.customer_number == customer_number)
        .order_by(mandates.c.created_at.desc(), mandates.c.id.desc())
    )
    return [_from_row(r) for r in (await session.execute(query)).all()]


# --- Idempotency-Key ---------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyClaim:
    """The Idempotency-Key's record: who claimed it first, and whether a request holds it now."""

    request_hash: str
    mandate_id: str
    lease_until: datetime | None


async def claim_idempotency_key(
    session: AsyncSession, tenant_id: str, key: str, request_hash: str, mandate_id: str, lease_until: datetime
) -> KeyClaim | None:
    """Record the key for this request, leased to it until ``lease_until``. None when it is new;
    else the earlier claim, row-locked until the transaction ends (a concurrent request with the
    same key waits on the unique index until the first one commits)."""
    stmt = (
        insert(idempotency_keys)
        .values(
            tenant_id=tenant_id,
            key=key,
            request_hash=request_hash,
            mandate_id=mandate_id,
            created_at=sa.func.now(),
            lease_until=lease_until,
        )
        .on_conflict_do_nothing()
        .returning(idempotency_keys.c.key)
    )
    if (await session.execute(stmt)).first() is not None:
        return None
    row = (
        await session.execute(
            sa.select(idempotency_keys.c.request_hash, idempotency_keys.c.mandate_id, idempotency_keys.c.lease_until)
            .where(idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key == key)
            .with_for_update()
        )
    ).one()
    return KeyClaim(row.request_hash, str(row.mandate_id), row.lease_until)


async def lease_idempotency_key(session: AsyncSession, tenant_id: str, key: str, until: datetime | None) -> None:
    """Take (``until``) or give back (None) the key's lease."""
    await session.execute(
        sa.update(idempotency_keys)
        .where(idempotency_keys.c.tenant_id == tenant_id, idempotency_keys.c.key == key)
        .values(lease_until=until)
    )


async def claim_prepared_before(session: AsyncSession, created_before: datetime, limit: int) -> list[Mandate]:
    """The one query across tenants: the expiry sweep, which acts on each mandate in its own tenant."""
    rows = await session.execute(
        sa.select(mandates)
        .where(mandates.c.status == Status.PREPARED.value, mandates.c.created_at < created_before)
        .order_by(mandates.c.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_from_row(row) for row in rows]


# --- the interface the use cases see -----------------------------------------------------------


class MandateRepository(Protocol):
    """Mandates, their history and the Idempotency-Keys, as the use cases use them (SQL here, a
    dict in the unit tests' fakes)."""

    async def get(self, tenant_id: str, mandate_id: str, lock: bool = False) -> Mandate | None: ...
    async def get_by_number(self, tenant_id: str, number: str, lock: bool = False) -> Mandate | None: ...
    async def add(self, m: Mandate) -> None: ...
    async def add_if_number_unseen(self, m: Mandate) -> bool: ...
    async def save(self, m: Mandate) -> None: ...
    async def remove(self, tenant_id: str, mandate_id: str) -> None: ...
    async def for_customer(self, tenant_id: str, customer_number: str) -> list[Mandate]: ...
    async def record_history(self, tenant_id: str, mandate_id: str, event: Envelope) -> None: ...
    async def claim_idempotency_key(
        self, tenant_id: str, key: str, request_hash: str, mandate_id: str, lease_until: datetime
    ) -> KeyClaim | None: ...
    async def lease_idempotency_key(self, tenant_id: str, key: str, until: datetime | None) -> None: ...
    async def claim_prepared_before(self, created_before: datetime, limit: int) -> list[Mandate]: ...


class SqlMandateRepository:
    """``MandateRepository`` on a unit of work's session: the functions above."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str, mandate_id: str, lock: bool = False) -> Mandate | None:
        return await get(self.session, tenant_id, mandate_id, lock)

    async def get_by_number(self, tenant_id: str, number: str, lock: bool = False) -> Mandate | None:
        return await get_by_number(self.session, tenant_id, number, lock)

    async def add(self, m: Mandate) -> None:
        await add(self.session, m)

    async def add_if_number_unseen(self, m: Mandate) -> bool:
        return await add_if_number_unseen(self.session, m)

    async def save(self, m: Mandate) -> None:
        await save(self.session, m)

    async def remove(self, tenant_id: str, mandate_id: str) -> None:
        await remove(self.session, tenant_id, mandate_id)

    async def for_customer(self, tenant_id: str, customer_number: str) -> list[Mandate]:
        return await for_customer(self.session, tenant_id, customer_number)

    async def record_history(self, tenant_id: str, mandate_id: str, event: Envelope) -> None:
        await record_history(self.session, tenant_id, mandate_id, event)

    async def claim_idempotency_key(
        self, tenant_id: str, key: str, request_hash: str, mandate_id: str, lease_until: datetime
    ) -> KeyClaim | None:
        return await claim_idempotency_key(self.session, tenant_id, key, request_hash, mandate_id, lease_until)

    async def lease_idempotency_key(self, tenant_id: str, key: str, until: datetime | None) -> None:
        await lease_idempotency_key(self.session, tenant_id, key, until)

    async def claim_prepared_before(self, created_before: datetime, limit: int) -> list[Mandate]:
        return await claim_prepared_before(self.session, created_before, limit)


def of(uow: UnitOfWork) -> MandateRepository:
    """The unit of work's mandate repository."""
    return uow.repository(SqlMandateRepository)
