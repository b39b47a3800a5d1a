"""Twikey's own record of what was paid and of its mandates, for reconciliation (bookkeeping-svc
asks for it).

Read from the feeds, replayed from a position the caller gives (``X-RESUME-AFTER``), page after
page: the transaction feed (every state change; OPEN entries are left out), the pay-link feed
(paid updates only, its default) and the mandate feed (every message: signed, updated,
cancelled). Nothing is stored and no event is published: this is a read-only view, and the
regular drain is not disturbed because it sends its own stored cursor with every read. A feed
that sync-svc has never drained is refused: its first drain reads from Twikey's own cursor for
the key, which a replay would move.

Paid items keep Twikey's identity: (kind ``transaction`` | ``paylink``, Twikey id); the two kinds
are numbered separately and their ids overlap. Mandates are named by their number (``MndtId``);
the caller nets the messages of one number (the latest wins).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal

import sqlalchemy as sa

from koppel_shared.errors import Conflict, Unavailable, UpstreamFailed
from koppel_shared.service import Runtime
from sync_svc.adapters.orm import feed_cursors
from sync_svc.adapters.twikey_client import TwikeyError, TwikeyUnavailable
from sync_svc.domain import feed_messages
from sync_svc.domain.feed_messages import BadMessage
from sync_svc.service_layer import connections
from sync_svc.service_layer.feeds import _page_top
from sync_svc.service_layer.resources import Resources

Kind = Literal["transaction", "paylink"]
FEED_OF: dict[str, str] = {"transaction": "transaction", "paylink": "paylink"}
# The pay-link feed without all=true: paid updates only.
PAID_LINKS = [("include", "meta"), ("include", "time")]
PAGES_PER_CALL = 50
Convert = Callable[[dict[str, Any]], dict[str, Any] | None]


def _transaction_item(entry: dict[str, Any]) -> dict[str, Any] | None:
    t = feed_messages.transaction_changed(entry, None)
    if t.state not in ("PAID", "ERROR", "UNPAID"):
        return None  # created or updated, not (yet) a payment
    return {
        "kind": "transaction",
        "twikey_id": t.transaction_id,
        "state": "paid" if t.state == "PAID" else "failed",
        "amount_cents": t.amount_cents,
        "reference": t.reference,
        "mandate_number": t.mandate_number,
        "at": t.booked_at.isoformat() if t.booked_at else None,
        "seq": t.feed_seq,
    }


def _paylink_item(entry: dict[str, Any]) -> dict[str, Any] | None:
    p = feed_messages.paylink_changed(entry)
    if p.state != "paid" or p.amount_cents is None:
        return None
    times = entry.get("time") if isinstance(entry.get("time"), dict) else {}
    at = feed_messages.parse_time((times or {}).get("lastupdate"))
    return {
        "kind": "paylink",
        "twikey_id": p.paylink_id,
        "state": "paid",
        "amount_cents": p.amount_cents,
        "reference": p.reference,
        "mandate_number": p.mandate_number,
        "at": at.isoformat() if at else None,
        "seq": p.feed_seq,
    }


def _mandate_item(entry: dict[str, Any]) -> dict[str, Any]:
    m = feed_messages.mandate_changed(entry)
    debtor = m.debtor
    return {
        "mandate_number": m.mandate_number,
        "change": m.change,
        "state": m.state,
        "customer_number": debtor.customer_number if debtor else None,
        "name": (debtor.company_name or debtor.name) if debtor else None,
        "signature_date": m.signature_date.isoformat() if m.signature_date else None,
        "at": m.event_time.isoformat(),
        "seq": m.feed_seq,
    }


async def read(runtime: Runtime, resources: Resources, tenant_id: uuid.UUID, kind: Kind, after: int) -> dict[str, Any]:
    """Paid items of one kind: up to ``PAGES_PER_CALL`` feed pages after ``after``; ``next_after``
    continues, ``done`` says the feed's end was reached. Entries Koppel cannot read are counted
    in ``unreadable`` (the drain puts them on the feed's bad-messages list)."""
    params = None if kind == "transaction" else PAID_LINKS
    convert = _transaction_item if kind == "transaction" else _paylink_item
    return {"kind": kind, **await _replay(runtime, resources, tenant_id, FEED_OF[kind], params, convert, after)}


async def read_mandates(runtime: Runtime, resources: Resources, tenant_id: uuid.UUID, after: int) -> dict[str, Any]:
    """The mandate feed's messages, as ``read`` pages the paid items: one item per message
    (number, change, state, customer number, name, signature date, ``seq``)."""
    return await _replay(runtime, resources, tenant_id, "mandate", None, _mandate_item, after)


async def _replay(
    runtime: Runtime,
    resources: Resources,
    tenant_id: uuid.UUID,
    feed: str,
    params: Sequence[tuple[str, str]] | None,
    convert: Convert,
    after: int,
) -> dict[str, Any]:
    async with runtime.uow() as uow:
        connection = await connections.load(uow, runtime.secrets, tenant_id)
        cursor = await uow.session.execute(
            sa.select(feed_cursors.c.cursor).where(feed_cursors.c.tenant_id == tenant_id, feed_cursors.c.feed == feed)
        )
        drained = cursor.scalar_one_or_none() is not None
    if connection is None:
        raise Conflict("twikey_not_connected", "this tenant has no Twikey connection")
    if not drained:
        raise Conflict("feed_not_drained", f"the {feed} feed was never read; try again after its first drain")
    client = resources.gateway.client(connection.credentials)
    items: list[dict[str, Any]] = []
    unreadable = 0
    position = after
    for _ in range(PAGES_PER_CALL):
        try:
            page = await client.feed(feed, position, params)
        except TwikeyUnavailable as exc:
            raise Unavailable("twikey_unavailable", f"Twikey could not be reached: {exc}") from exc
        except TwikeyError as exc:
            raise UpstreamFailed(f"twikey_{exc.code}", exc.message) from exc
        if not page.items:
            return {"items": items, "next_after": position, "done": True, "unreadable": unreadable}
        for entry in page.items:
            try:
                item = convert(entry) if isinstance(entry, dict) else None
            except (BadMessage, ValueError):
                unreadable += 1
                continue
            if item is not None:
                items.append(item)
        top = _page_top(feed, page)
        if top is None or top <= position:
            raise UpstreamFailed("twikey_feed_unpaged", f"the {feed} feed answered a page without sequence numbers")
        position = top
    return {"items": items, "next_after": position, "done": False, "unreadable": unreadable}
