"""The event feed an ERP pulls: the tenant's events in a stable order, after an opaque cursor.

Why positions are given when the feed is read, not when an event is stored: consumers commit
concurrently, so a counter taken at insert time can become visible out of order (position 8
committed while 7 is still in flight) and a reader that already moved past 8 would never see 7.
Instead events are stored without a position and, before each read, the tenant's unpositioned
events get the next values of one sequence under a per-tenant transaction lock. Those
"sequencing" transactions for one tenant run one after another, so every position handed out
later is higher than every position already visible: a reader that saw position N will find all
later events above N — no gaps and no repeats, also while events keep arriving during paging.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult

from koppel_shared.db import UnitOfWork
from koppel_shared.web.errors import Problem
from notify_svc.adapters.orm import events
from notify_svc.domain import subscriptions

_SEQUENCE = sa.text(
    """
    UPDATE events SET feed_seq = positioned.n
    FROM (
        SELECT seq, nextval('events_feed_seq') AS n
        FROM (
            SELECT seq FROM events
            WHERE tenant_id = :tenant AND feed_seq IS NULL AND type <> 'koppel.test'  -- a sample, not an event
            ORDER BY seq
        ) AS waiting
    ) AS positioned
    WHERE events.seq = positioned.seq
    """
)
_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended('notify-feed:' || :tenant, 0))")

CURSOR_PREFIX = "evf1_"
# Positions are PostgreSQL BIGINTs; anything larger was never handed out.
_MAX_POSITION = 2**63 - 1
_INVALID_CURSOR = "the cursor is not one this feed returned"
_LAST_POSITION = sa.text("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_feed_seq")


def encode_cursor(position: int) -> str:
    return CURSOR_PREFIX + base64.urlsafe_b64encode(str(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        if not cursor.startswith(CURSOR_PREFIX):
            raise ValueError
        raw = cursor.removeprefix(CURSOR_PREFIX)
        position = int(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode())
        if not 0 <= position <= _MAX_POSITION:
            raise ValueError
        return position
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem(400, "invalid_cursor", _INVALID_CURSOR) from None


async def sequence_tenant(uow: UnitOfWork, tenant_id: uuid.UUID) -> None:
    """Give the tenant's waiting events their feed positions (commits)."""
    await uow.session.execute(_LOCK, {"tenant": str(tenant_id)})
    await uow.session.execute(_SEQUENCE, {"tenant": tenant_id})
    await uow.commit()


@dataclass(frozen=True)
class FeedPage:
    events: list[dict[str, Any]]
    next_cursor: str
    has_more: bool


async def read_feed(
    uow: UnitOfWork,
    tenant_id: uuid.UUID,
    after: str | None,
    types: list[str],
    limit: int,
) -> FeedPage:
    for pattern in types:
        error = subscriptions.pattern_error(pattern)
        if error:
            raise Problem(422, "invalid_types", error)
    position = decode_cursor(after) if after else 0
    await sequence_tenant(uow, tenant_id)
    if position and position > (await uow.session.execute(_LAST_POSITION)).scalar_one():
        # Past every position ever handed out: such a cursor would hide the events that get
        # those positions later, so it is refused rather than answered with an empty page.
        raise Problem(400, "invalid_cursor", _INVALID_CURSOR)

    # The highest visible position first: every event at or below it is committed and visible
    # (positions become visible in order), so the page and the cursor cannot skip anything.
    top = (
        await uow.session.execute(sa.select(sa.func.max(events.c.feed_seq)).where(events.c.tenant_id == tenant_id))
    ).scalar_one_or_none() or 0
    query = (
        sa.select(events.c.feed_seq, events.c.payload)
        .where(events.c.tenant_id == tenant_id, events.c.feed_seq > position, events.c.feed_seq <= top)
        .order_by(events.c.feed_seq)
        .limit(limit + 1)
    )
    if types and "*" not in types:
        conditions = []
        for pattern in types:
            if pattern.endswith(".*"):
                conditions.append(events.c.type.startswith(pattern[:-1], autoescape=True))
            else:
                conditions.append(events.c.type == pattern)
        query = query.where(sa.or_(*conditions))
    rows = (await uow.session.execute(query)).all()
    has_more = len(rows) > limit
    rows = rows[:limit]
    # Nothing (more) matched up to ``top``: move the cursor past what was looked at, so a
    # filtering reader does not scan the same unmatched events again.
    last = rows[-1].feed_seq if has_more else max(position, top)
    return FeedPage([json.loads(r.payload) for r in rows], encode_cursor(last), has_more)


async def purge_events(uow: UnitOfWork, older_than: datetime, batch: int = 5000) -> int:
    """Delete events (and their deliveries and attempts) received before ``older_than``."""
    result = await uow.session.execute(
        sa.delete(events).where(
            events.c.seq.in_(sa.select(events.c.seq).where(events.c.received_at < older_than).limit(batch))
        )
    )
    await uow.commit()
    return int(cast("CursorResult[Any]", result).rowcount or 0)
