"""Draining Twikey's feeds into events, and moving the cursor back (feed reset).

One page = one transaction: fetch the page with ``X-RESUME-AFTER: <stored cursor>``, write its
events to the outbox and move the cursor, commit. A crash anywhere before the commit leaves the
cursor where it was, and the next drain asks Twikey for the same page again. One drainer per
tenant, even across replicas: a session-level ``pg_try_advisory_lock`` for the drain; and the
cursor moves by compare-and-set, so even without the lock a page could never be committed twice.

Envelope ids come from Twikey's identity of the message (``twikey_event_uuid``), so a page read
twice (crash, reset) yields the same event ids; the outbox ignores a repeated id and consumers'
inboxes drop redeliveries.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from koppel_shared.db import UnitOfWork
from koppel_shared.errors import Conflict, Invalid
from koppel_shared.events import Envelope, new_event
from koppel_shared.events.registry import EventData
from koppel_shared.events.twikey import twikey_event_uuid
from koppel_shared.logging import get_logger, log_context
from koppel_shared.service import Runtime
from sync_svc.adapters.orm import drain_requests, feed_cursors, feed_errors, feed_pages, twikey_transactions
from sync_svc.adapters.twikey_client import FeedPage, TwikeyClient, TwikeyError, TwikeyUnavailable
from sync_svc.domain import feed_messages
from sync_svc.domain.feed_messages import BadMessage
from sync_svc.domain.feeds import FEEDS, PageRecord, cursor_for_reset
from sync_svc.service_layer import connections
from sync_svc.service_layer.resources import DRAIN_CHANNEL, Resources

log = get_logger(__name__)

# Tests inject a failure between fetching a page and committing it through this hook.
AfterFetch = Callable[[str, FeedPage], Awaitable[None]]
LOCK_CLASS = 0x5A1C  # first key of the two-int advisory lock: "sync-svc feed drain"
MAX_PAGES_PER_DRAIN = 100_000  # a guard against a feed that never ends


@dataclass
class FeedResult:
    feed: str
    messages: int = 0
    bad: int = 0
    pages: int = 0
    locked_out: bool = False
    error: str | None = None


@dataclass
class DrainResult:
    tenant_id: uuid.UUID
    feeds: list[FeedResult]

    @property
    def ok(self) -> bool:
        return all(f.error is None and not f.locked_out for f in self.feeds)

    @property
    def messages(self) -> int:
        return sum(f.messages for f in self.feeds)


def _envelope(tenant_id: uuid.UUID, data: EventData, twikey_event_id: str, at: datetime | None) -> Envelope:
    event_id = twikey_event_uuid(tenant_id, twikey_event_id)
    # The correlation id is the event id too: a replay is the same event in every respect.
    return new_event(data, tenant_id=tenant_id, id=event_id, correlation_id=str(event_id), occurred_at=at)


async def _transaction_memory(uow: UnitOfWork, tenant_id: uuid.UUID, items: list[dict[str, Any]]) -> dict[str, Any]:
    ids = {str(i.get("id")) for i in items if i.get("id") is not None}
    if not ids:
        return {}
    rows = await uow.session.execute(
        sa.select(twikey_transactions.c.transaction_id, twikey_transactions.c.paid_seq).where(
            twikey_transactions.c.tenant_id == tenant_id, twikey_transactions.c.transaction_id.in_(ids)
        )
    )
    return {r.transaction_id: r.paid_seq for r in rows}


async def _page_events(
    uow: UnitOfWork, tenant_id: uuid.UUID, feed: str, items: list[dict[str, Any]]
) -> tuple[list[Envelope], list[tuple[BadMessage, dict[str, Any]]], int | None]:
    """Events for the understood items, the bad ones with their reason, and the highest seq seen."""
    events: list[Envelope] = []
    bad: list[tuple[BadMessage, dict[str, Any]]] = []
    top: int | None = None
    paid = await _transaction_memory(uow, tenant_id, items) if feed == "transaction" else {}
    memory_rows: dict[str, dict[str, Any]] = {}
    for item in items:
        seq: int | None
        if not isinstance(item, dict):
            bad.append((BadMessage(f"feed item is not an object: {type(item).__name__}"), {"item": repr(item)[:500]}))
            continue
        try:
            if feed == "mandate":
                m = feed_messages.mandate_changed(item)
                events.append(_envelope(tenant_id, m, m.twikey_event_id, m.event_time))
                seq = m.feed_seq
            elif feed == "transaction":
                tx_id = str(item.get("id"))
                t = feed_messages.transaction_changed(item, paid.get(tx_id))
                events.append(_envelope(tenant_id, t, t.twikey_event_id, t.booked_at))
                seq = t.feed_seq or None
                if t.state == "PAID" and paid.get(tx_id) is None and seq is not None:
                    paid[tx_id] = seq
                memory_rows[tx_id] = {
                    "tenant_id": tenant_id,
                    "transaction_id": tx_id,
                    "mandate_number": t.mandate_number,
                    "amount_cents": t.amount_cents,
                    "last_state": t.state,
                    "paid_seq": paid.get(tx_id),
                }
            else:
                p = feed_messages.paylink_changed(item)
                events.append(_envelope(tenant_id, p, p.twikey_event_id, None))
                seq = p.feed_seq
        except BadMessage as exc:
            bad.append((exc, item))
            seq = exc.seq
        except ValueError as exc:  # pydantic validation of an unexpected value
            bad.append((BadMessage(f"unexpected content: {str(exc)[:500]}"), item))
            seq = None
        if seq is not None:
            top = seq if top is None else max(top, seq)
    if memory_rows:
        stmt = insert(twikey_transactions).values(list(memory_rows.values()))
        await uow.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["tenant_id", "transaction_id"],
                set_={
                    "last_state": stmt.excluded.last_state,
                    # The first PAID seen stays: later entries compare against it.
                    "paid_seq": sa.func.coalesce(twikey_transactions.c.paid_seq, stmt.excluded.paid_seq),
                    "mandate_number": sa.func.coalesce(
                        twikey_transactions.c.mandate_number, stmt.excluded.mandate_number
                    ),
                },
            )
        )
    return events, bad, top


def _page_top(feed: str, page: FeedPage) -> int | None:
    """Where the cursor goes after this page: X-LAST, else the highest sequence number on it."""
    if page.last is not None:
        return page.last
    key = "EvtId" if feed == "mandate" else "seq"
    seqs = [i.get(key) for i in page.items if isinstance(i, dict)]
    numbers = [int(v) for v in seqs if isinstance(v, int) or (isinstance(v, str) and v.isdigit())]
    return max(numbers) if numbers else None


async def _commit_page(
    runtime: Runtime, tenant_id: uuid.UUID, feed: str, page: FeedPage, before: int | None, after: int
) -> int | None:
    """Events of the page + the cursor move, in one transaction. The cursor moves only if it is
    still where this drainer read it (compare-and-set): a feed reset or another drainer in the
    meantime makes the whole page roll back. Returns the number of bad items, None if not moved."""
    async with runtime.uow() as uow:
        now = datetime.now(UTC)
        moved = await uow.session.execute(
            sa.update(feed_cursors)
            .where(
                feed_cursors.c.tenant_id == tenant_id,
                feed_cursors.c.feed == feed,
                feed_cursors.c.cursor.is_not_distinct_from(before),
            )
            .values(
                cursor=after,
                messages_total=feed_cursors.c.messages_total + len(page.items),
                last_drain_at=now,
                last_error=None,
            )
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined,unused-ignore]
            return None
        events, bad, _ = await _page_events(uow, tenant_id, feed, page.items)
        await uow.emit(*events)
        for reason, item in bad:
            log.warning("feed.bad_message", tenant_id=str(tenant_id), feed=feed, seq=reason.seq, reason=reason.reason)
            await uow.session.execute(
                sa.insert(feed_errors).values(
                    tenant_id=tenant_id, feed=feed, seq=reason.seq, reason=reason.reason, message=item
                )
            )
        await uow.session.execute(
            sa.insert(feed_pages).values(
                tenant_id=tenant_id,
                feed=feed,
                cursor_before=before,
                cursor_after=after,
                count=len(page.items),
                fetched_at=now,
            )
        )
        await uow.commit()
        return len(bad)


async def drain_feed(
    runtime: Runtime, client: TwikeyClient, tenant_id: uuid.UUID, feed: str, after_fetch: AfterFetch | None = None
) -> FeedResult:
    """Drain one feed until empty. One drainer per tenant: a session-level advisory lock held for
    the whole drain (released on return, or by PostgreSQL if the process dies). While a page is
    being committed the next one is already being fetched — after the cursor this page moves to,
    so nothing is skipped; if the commit fails, the prefetched page is thrown away."""
    result = FeedResult(feed=feed)
    async with runtime.engine.connect() as lock:
        key = {"cls": LOCK_CLASS, "tenant": str(tenant_id)}
        if not await lock.scalar(sa.text("SELECT pg_try_advisory_lock(:cls, hashtext(:tenant))"), key):
            result.locked_out = True
            return result
        prefetch: asyncio.Future[FeedPage] | None = None
        try:
            async with runtime.uow() as uow:
                cursor = await uow.session.scalar(
                    sa.select(feed_cursors.c.cursor).where(
                        feed_cursors.c.tenant_id == tenant_id, feed_cursors.c.feed == feed
                    )
                )
            prefetch = asyncio.ensure_future(client.feed(feed, cursor))
            while result.pages < MAX_PAGES_PER_DRAIN:
                page = await prefetch
                prefetch = None
                if after_fetch is not None:
                    await after_fetch(feed, page)
                if not page.items:
                    await _record_empty(runtime, tenant_id, feed, result.messages)
                    return result
                top = _page_top(feed, page)
                if top is None or top == cursor:
                    # Items but no way to move past them: stop rather than loop forever.
                    result.error = "feed page without X-LAST or sequence numbers"
                    return result
                prefetch = asyncio.ensure_future(client.feed(feed, top))
                bad = await _commit_page(runtime, tenant_id, feed, page, cursor, top)
                if bad is None:
                    result.locked_out = True  # the cursor was moved under us (feed reset): drain again
                    return result
                cursor = top
                result.pages += 1
                result.messages += len(page.items)
                result.bad += bad
            return result
        finally:
            if prefetch is not None:
                prefetch.cancel()
                with contextlib.suppress(BaseException):
                    await prefetch
            await lock.execute(sa.text("SELECT pg_advisory_unlock(:cls, hashtext(:tenant))"), key)
            await lock.commit()


async def _record_empty(runtime: Runtime, tenant_id: uuid.UUID, feed: str, messages: int) -> None:
    async with runtime.uow() as uow:
        await uow.session.execute(
            sa.update(feed_cursors)
            .where(feed_cursors.c.tenant_id == tenant_id, feed_cursors.c.feed == feed)
            .values(last_drain_at=datetime.now(UTC), last_drain_count=messages, last_error=None)
        )
        await uow.commit()


async def _record_error(runtime: Runtime, tenant_id: uuid.UUID, feed: str, error: str) -> None:
    async with runtime.uow() as uow:
        await uow.session.execute(
            sa.update(feed_cursors)
            .where(feed_cursors.c.tenant_id == tenant_id, feed_cursors.c.feed == feed)
            .values(last_error=error[:1000], last_error_at=datetime.now(UTC))
        )
        await uow.commit()


async def drain_tenant(
    runtime: Runtime,
    resources: Resources,
    tenant_id: uuid.UUID,
    after_fetch: AfterFetch | None = None,
    feeds: tuple[str, ...] = FEEDS,
) -> DrainResult:
    """Drain every feed of the tenant until empty. Twikey errors are recorded on the feed and do
    not stop the other feeds; the caller retries later (the drain request stays pending)."""
    async with runtime.uow() as uow:
        connection = await connections.load(uow, runtime.secrets, tenant_id)
    if connection is None:
        return DrainResult(tenant_id, [FeedResult(feed=f, error="not connected") for f in feeds])
    client = resources.gateway.client(connection.credentials)
    results = []
    with log_context(tenant_id=tenant_id):
        for feed in feeds:
            try:
                result = await drain_feed(runtime, client, tenant_id, feed, after_fetch)
            except (TwikeyError, TwikeyUnavailable) as exc:
                error = f"{type(exc).__name__}: {exc}"
                result = FeedResult(feed=feed, error=error)
                log.warning("feed.drain_failed", feed=feed, error=error)
                await _record_error(runtime, tenant_id, feed, error)
            results.append(result)
            if result.locked_out:
                break  # another drainer has this tenant; it will do the other feeds too
    drained = DrainResult(tenant_id, results)
    if drained.messages:
        log.info("feed.drained", tenant_id=str(tenant_id), messages=drained.messages)
    return drained


# ---- reset and status ----------------------------------------------------------------------------
async def reset(uow: UnitOfWork, tenant_id: uuid.UUID, feed: str, since: datetime | None) -> list[dict[str, Any]]:
    """Move the stored cursor(s) back so the next drain replays from ``since`` (or the start),
    and ask for a drain. Twikey's own "Reset feed" is a dashboard action without an API; we do not
    need it because every read sends ``X-RESUME-AFTER`` from our own cursor."""
    names = FEEDS if feed == "all" else (feed,)
    if feed != "all" and feed not in FEEDS:
        raise Invalid("unknown_feed", f"feed must be one of: all, {', '.join(FEEDS)}")
    moved = []
    for name in names:
        row = (
            await uow.session.execute(
                sa.select(feed_cursors.c.cursor)
                .where(feed_cursors.c.tenant_id == tenant_id, feed_cursors.c.feed == name)
                .with_for_update()
            )
        ).first()
        if row is None:
            raise Conflict("twikey_not_connected", "this tenant has no Twikey connection")
        pages: list[PageRecord] = []
        if since is not None:
            found = await uow.session.execute(
                sa.select(feed_pages.c.cursor_before, feed_pages.c.fetched_at)
                .where(
                    feed_pages.c.tenant_id == tenant_id,
                    feed_pages.c.feed == name,
                    feed_pages.c.fetched_at >= since,
                )
                .order_by(feed_pages.c.fetched_at)
                .limit(1)
            )
            pages = [PageRecord(r.cursor_before, r.fetched_at) for r in found]
        target = cursor_for_reset(since, pages)
        if target is not None and (row.cursor is None or target < row.cursor):
            await uow.session.execute(
                sa.update(feed_cursors)
                .where(feed_cursors.c.tenant_id == tenant_id, feed_cursors.c.feed == name)
                .values(cursor=target)
            )
        after = target if target is not None and (row.cursor is None or target < row.cursor) else row.cursor
        moved.append({"feed": name, "cursor_before": row.cursor, "cursor_after": after})
    await request_drain(uow, tenant_id)
    return moved


async def request_drain(uow: UnitOfWork, tenant_id: uuid.UUID) -> None:
    stmt = insert(drain_requests).values(tenant_id=tenant_id, requested_at=sa.func.now())
    await uow.session.execute(
        stmt.on_conflict_do_update(index_elements=["tenant_id"], set_={"requested_at": sa.func.now()})
    )
    await uow.session.execute(sa.text("SELECT pg_notify(:ch, :t)"), {"ch": DRAIN_CHANNEL, "t": str(tenant_id)})


async def status(uow: UnitOfWork, tenant_id: uuid.UUID, errors_limit: int = 50) -> dict[str, Any]:
    cursors = await uow.session.execute(
        sa.select(feed_cursors).where(feed_cursors.c.tenant_id == tenant_id).order_by(feed_cursors.c.feed)
    )
    errors = await uow.session.execute(
        sa.select(feed_errors)
        .where(feed_errors.c.tenant_id == tenant_id)
        .order_by(feed_errors.c.id.desc())
        .limit(errors_limit)
    )
    return {
        "feeds": [
            {
                "feed": c.feed,
                "cursor": c.cursor,
                "messages_total": c.messages_total,
                "last_drain_at": c.last_drain_at,
                "last_drain_count": c.last_drain_count,
                "last_error": c.last_error,
                "last_error_at": c.last_error_at,
            }
            for c in cursors
        ],
        "bad_messages": [
            {"id": e.id, "feed": e.feed, "seq": e.seq, "reason": e.reason, "message": e.message, "at": e.recorded_at}
            for e in errors
        ],
    }
