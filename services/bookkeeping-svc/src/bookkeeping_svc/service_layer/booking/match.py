"""Step 3: match — each booked MEMO's customer line against its sales invoice line
(``<match>`` with one set per booking, 3 credits for up to 25)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from bookkeeping_svc.adapters.orm import bookings
from bookkeeping_svc.adapters.twinfield import answers, documents
from bookkeeping_svc.adapters.twinfield.errors import ConsentLost, TwinfieldError
from bookkeeping_svc.domain.booking import Booking, Status, last40
from bookkeeping_svc.service_layer.booking import lookup
from bookkeeping_svc.service_layer.booking.work import WRITE_COST, Work, log, record
from bookkeeping_svc.service_layer.gateway import Access, NotConnected

MATCHABLE = (bookings.c.memo_number.is_not(None), bookings.c.sales_number.is_not(None))


async def match_payments(work: Work, access: Access) -> tuple[Access, bool]:
    if not await work.due(access.tenant_id, (Status.BOOKED,), *MATCHABLE, limit=1):
        return access, False
    async with work.gw.prepaid(access, WRITE_COST) as credits:
        rows = await work.due(access.tenant_id, (Status.BOOKED,), *MATCHABLE)
        if not rows:
            return access, False
        memo_daybook = access.accounts.memo_daybook
        sets = [
            (
                documents.MatchLine(r.sales_daybook, r.sales_number, r.sales_line),
                documents.MatchLine(memo_daybook, r.memo_number, r.memo_line),
            )
            for r in rows
        ]
        request = documents.match(access.office, sets, datetime.now(UTC).date())
        try:
            access, root = await work.gw.call(access, request, credits)
        except (ConsentLost, NotConnected):
            raise
        except TwinfieldError as exc:
            # Matching is naturally idempotent: a repeat of an applied match fails, and the lines'
            # status then shows it was applied.
            await work.timeout(rows, exc)
            return access, True
    results = documents.parse_match(root)
    failed = [row for row, result in zip(rows, results, strict=False) if not result.ok]
    access, done_before = await _matched_in_twinfield(work, access, failed)
    now = datetime.now(UTC)
    async with work.runtime.uow() as uow:
        for row, result in zip(rows, results, strict=False):
            if result.ok or row.id in done_before:
                await record(uow, row.id, Booking.of(row).match(now))
            else:
                await work.refuse(uow, row, answers.refusal(result.messages))
        await uow.commit()
    return access, True


async def _matched_in_twinfield(work: Work, access: Access, rows: list[Any]) -> tuple[Access, set[uuid.UUID]]:
    """Bookings of failed match sets whose MEMO line Twinfield shows as ``matched`` (an earlier
    match whose answer was lost). Decided on the line's status, never on the wording of the
    failure; ``proposed`` (in a payment-run proposal) is not matched."""
    if not rows:
        return access, set()
    try:
        access, items = await lookup.customer_lines(work.gw, access, [last40(r.invoice_number) for r in rows])
    except (ConsentLost, NotConnected):
        raise
    except TwinfieldError as exc:
        log.warning("booker.match_check_failed", error=str(exc)[:300])
        return access, set()
    status = {(i.daybook, i.number, i.line): i.matchstatus for i in items}
    memo_daybook = access.accounts.memo_daybook
    return access, {r.id for r in rows if status.get((memo_daybook, r.memo_number, r.memo_line)) == "matched"}
