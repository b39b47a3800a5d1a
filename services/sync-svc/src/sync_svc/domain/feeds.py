"""The feeds sync-svc reads, and the rules for moving a cursor back (feed reset)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

FeedName = Literal["mandate", "transaction", "paylink"]
FEEDS: tuple[FeedName, ...] = ("mandate", "transaction", "paylink")


@dataclass(frozen=True)
class PageRecord:
    """A page we read: where the cursor was before it, and when it was fetched."""

    cursor_before: int | None
    fetched_at: datetime


def cursor_for_reset(since: datetime | None, pages: list[PageRecord]) -> int | None:
    """The cursor to resume after so that every message that happened at or after ``since`` is
    read again. A message that happened at time t can only have been fetched at or after t, so
    going back to where the first page fetched at/after ``since`` started is enough (a few earlier
    messages may come again: they carry the same event ids, consumers drop them).
    None: nothing was read since that moment, there is nothing to replay.
    ``since`` None, or no page fetched since, → 0 = from the very first message (the sandbox's
    and the Twikey SDKs' meaning of ``X-RESUME-AFTER: 0``)."""
    if since is None:
        return 0
    after = [p for p in pages if p.fetched_at >= since]
    if not after:
        return None  # nothing was read since that moment: the stored cursor stays where it is
    first = min(after, key=lambda p: p.fetched_at)
    return first.cursor_before if first.cursor_before is not None else 0
