"""Reversals: counter MEMOs for reversed collections. UndoMatch (matching.asmx) is not part of
ProcessXml (and not in the sandbox); the counter MEMO's customer line is a debit open item carrying
the invoice number, so the receivable is open again and the cross-account is cleared. A payment
that was never matched is matched against its counter MEMO. An earlier counter MEMO whose answer
was lost is found by the same look-up as a payment's MEMO, never posted twice."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from bookkeeping_svc.adapters.orm import bookings
from bookkeeping_svc.adapters.twinfield import answers, documents
from bookkeeping_svc.adapters.twinfield.errors import ConsentLost, TwinfieldError
from bookkeeping_svc.domain.booking import (
    Booking,
    Memo,
    MissingCrossAccount,
    Status,
    last40,
    own_descriptions,
    reversal_memo,
)
from bookkeeping_svc.domain.invoices import find_own_memo
from bookkeeping_svc.service_layer.booking import lookup
from bookkeeping_svc.service_layer.booking.work import Work, failure, payment_of, record
from bookkeeping_svc.service_layer.gateway import Access, NotConnected


async def reverse_payments(work: Work, access: Access) -> tuple[Access, bool]:
    rows = await work.due(access.tenant_id, (Status.REVERSING,), bookings.c.memo_number.is_not(None))
    if not rows:
        return access, False
    accounts = access.accounts
    try:
        access, items = await lookup.customer_lines(work.gw, access, [last40(r.invoice_number) for r in rows])
        access, items = await lookup.with_memo_texts(work.gw, access, items, 1, {r.amount_cents for r in rows})
    except (ConsentLost, NotConnected):
        raise
    except TwinfieldError as exc:
        await work.timeout(rows, exc)
        return access, True
    claimed = await work.claimed(access.tenant_id, rows, reversal=True)
    to_post: list[tuple[Any, Booking, Memo]] = []
    async with work.runtime.uow() as uow:
        for row in rows:
            booking = Booking.of(row)
            texts = own_descriptions(row.reference, row.invoice_number, reversal=True)
            own = find_own_memo(items, row.invoice_number, texts, claimed)
            if own is not None and own.daybook == accounts.memo_daybook and own.value_cents > 0:
                claimed.add(own.number)
                await record(uow, row.id, booking.counter_booked(own.number))
                continue
            on = row.reversed_on or datetime.now(UTC).date()
            try:
                memo = reversal_memo(payment_of(row), row.customer_code, accounts, on)
            except MissingCrossAccount as exc:
                await work.refuse(uow, row, failure("not_configured", str(exc)))
                continue
            to_post.append((row, booking, memo))
            await record(uow, row.id, booking.counter_posting())
        await uow.commit()
    if not to_post:
        return access, True
    try:
        access, root = await work.gw.call(access, documents.transactions(access.office, [m for _, _, m in to_post]))
    except (ConsentLost, NotConnected):
        raise
    except TwinfieldError as exc:
        await work.timeout([r for r, _, _ in to_post], exc)
        return access, True
    results = documents.parse_transactions(root)
    unmatched: list[tuple[documents.MatchLine, documents.MatchLine]] = []
    async with work.runtime.uow() as uow:
        for (row, booking, memo), result in zip(to_post, results, strict=False):
            if result.ok and result.number:
                await record(uow, row.id, booking.counter_booked(result.number))
                if row.matched_at is None:
                    unmatched.append(
                        (
                            documents.MatchLine(accounts.memo_daybook, row.memo_number, row.memo_line),
                            documents.MatchLine(accounts.memo_daybook, result.number, memo.customer_line_id),
                        )
                    )
            else:
                await work.refuse(uow, row, answers.refusal(result.messages))
        await uow.commit()
    if unmatched:
        with contextlib.suppress(TwinfieldError):
            access, _ = await work.gw.call(access, documents.match(access.office, unmatched, datetime.now(UTC).date()))
    return access, True
