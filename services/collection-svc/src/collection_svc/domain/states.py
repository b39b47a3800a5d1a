"""The life of one collection attempt and how Twikey's transaction states move it.

Statuses only move forward, so a replayed or late message never undoes what happened:

    skipped ⇄ scheduled → submitted → paid → reversed
                              └──────→ failed ──→ paid (a late PAID after a non-final ERROR)
    skipped/scheduled → withdrawn

``skipped`` and ``scheduled`` are the only open states (re-evaluated when the mandate changes,
withdrawable); everything from ``submitted`` on is in Twikey's hands.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from collection_svc.domain import rcodes


class Status(StrEnum):
    SCHEDULED = "scheduled"
    SUBMITTED = "submitted"
    PAID = "paid"
    FAILED = "failed"
    REVERSED = "reversed"
    SKIPPED = "skipped"
    WITHDRAWN = "withdrawn"


OPEN = frozenset({Status.SCHEDULED, Status.SKIPPED})
# Statuses that hold the invoice's one live direct debit (a unique index enforces it).
LIVE = frozenset({Status.SCHEDULED, Status.SUBMITTED, Status.PAID})


@dataclass(frozen=True)
class Transition:
    to: Status
    r_code: str | None = None
    reason: str | None = None


def is_stale(feed_seq: int | None, last_feed_seq: int | None) -> bool:
    """A feed message at or before the last one applied to this collection (a replay)."""
    return feed_seq is not None and last_feed_seq is not None and feed_seq <= last_feed_seq


def describe_failure(r_code: str | None, bank_message: str | None, state: str) -> str:
    if r_code:
        return f"{r_code.upper()}: {rcodes.meaning(r_code)}"
    if bank_message:
        return bank_message
    return f"Twikey reported {state}"


def on_transaction_state(
    current: Status,
    state: str,
    *,
    reversal: bool = False,
    bank_error: str | None = None,
    bank_message: str | None = None,
) -> Transition | None:
    """Where a Twikey transaction-feed state takes a collection; None = nothing changes."""
    state = state.upper()
    code = bank_error.strip().upper() if bank_error else None
    if state == "PAID":
        if current in (Status.SUBMITTED, Status.FAILED):
            return Transition(Status.PAID, reason="paid")
        return None
    if state in ("ERROR", "UNPAID"):
        if current == Status.PAID:
            return Transition(
                Status.REVERSED, code, "reversed after payment: " + describe_failure(code, bank_message, state)
            )
        if current == Status.SUBMITTED:
            prefix = "reversed before we saw it paid: " if reversal else ""
            return Transition(Status.FAILED, code, prefix + describe_failure(code, bank_message, state))
        return None
    if state == "CANCELLED":
        if current == Status.SUBMITTED:
            return Transition(Status.FAILED, None, "the transaction was cancelled at Twikey")
        return None
    return None  # OPEN, PENDING: still on its way


def on_refused(current: Status, code: str, message: str) -> Transition | None:
    """``twikey.transaction.refused``: Twikey would not create the transaction."""
    if current == Status.SUBMITTED:
        return Transition(Status.FAILED, None, f"refused by Twikey ({code}): {message}")
    return None
