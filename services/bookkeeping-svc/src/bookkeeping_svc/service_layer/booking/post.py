"""Step 1 + 2: look up, then post — paid collections become MEMOs in Twinfield, at most 25 a
request.

1. **look up** (``<columns code="100">``, 1 credit per invoice number): the customer lines of the
   invoice number, every daybook and year. The same rows answer two questions: which open sales
   line does the payment belong to? and is *our* MEMO already there? A MEMO customer line with the
   invoice number and the paid amount on the payment's side is a candidate; its transaction is
   read (1 credit, only when such a line exists) and ours when the transaction has our
   cross-account line and the customer line's description is ours (the invoice number's first 40
   characters, or "<reference> betaling" of older MEMOs), and no other booking keeps its number.
   Found: booked, never posted again (this is how a timeout after Twinfield applied the write is
   resolved).
2. **post** (``<transactions>``, 3 credits): the MEMOs; bookings are marked ``posting`` and
   committed *before* the request, so an unanswered post is looked up, not repeated.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bookkeeping_svc.adapters.twinfield import answers, documents
from bookkeeping_svc.adapters.twinfield.errors import (
    ConsentLost,
    Fault,
    OutcomeUnknown,
    RateLimited,
    TokenRejected,
    TwinfieldError,
)
from bookkeeping_svc.domain.booking import Booking, Memo, MissingCrossAccount, Status, last40, own_descriptions
from bookkeeping_svc.domain.booking import payment_memo as make_memo
from bookkeeping_svc.domain.invoices import Found, NeedEmails, NotFound, OpenItem, find_own_memo, resolve_invoice
from bookkeeping_svc.service_layer.booking import lookup
from bookkeeping_svc.service_layer.booking.work import LOOKUP_COST, WRITE_COST, Work, failure, log, payment_of, record
from bookkeeping_svc.service_layer.gateway import Access, NotConnected

STATUSES = (Status.OPEN, Status.POSTING)


async def post_payments(work: Work, access: Access) -> tuple[Access, bool]:
    if not await work.due(access.tenant_id, STATUSES, limit=1):
        return access, False
    async with work.gw.prepaid(access, LOOKUP_COST + WRITE_COST) as credits:
        rows = await work.due(access.tenant_id, STATUSES)
        if not rows:
            return access, False
        accounts = access.accounts
        try:
            access, items = await lookup.customer_lines(
                work.gw, access, [last40(r.invoice_number) for r in rows], credits
            )
            access, items = await lookup.with_memo_texts(work.gw, access, items, -1, {r.amount_cents for r in rows})
        except (ConsentLost, NotConnected):
            raise
        except TwinfieldError as exc:
            await work.timeout(rows, exc)
            return access, True

        # Customer e-mails that decide between candidate invoices are read before the
        # transaction below: it must not wait on Twinfield (or its credits) holding row locks.
        emails: dict[str, str | None] | None = None
        emails_error: TwinfieldError | None = None
        wanted: set[str] = set()
        for row in rows:
            need = resolve_invoice(payment_of(row), items, accounts.memo_daybook)
            if isinstance(need, NeedEmails):
                wanted.update(need.customers)
        if wanted:
            try:
                access, emails = await lookup.customer_emails(work.gw, access, tuple(sorted(wanted)))
            except TwinfieldError as exc:
                if isinstance(exc, ConsentLost):
                    raise
                emails_error = exc
        claimed = await work.claimed(access.tenant_id, rows)
        to_post: list[tuple[Any, Booking, Memo]] = []
        now = datetime.now(UTC)
        async with work.runtime.uow() as uow:
            for row in rows:
                booking = Booking.of(row)
                texts = own_descriptions(row.reference, row.invoice_number)
                own = find_own_memo(items, row.invoice_number, texts, claimed)
                if own is not None and own.daybook == accounts.memo_daybook and own.value_cents < 0:
                    claimed.add(own.number)
                    # Already in Twinfield (an earlier post whose answer was lost): never again.
                    await record(
                        uow, row.id, booking.found_existing(own.number, own.line, access.office, own.customer, now)
                    )
                    log.info("booking.found_existing_memo", booking_id=str(row.id), memo=own.number)
                    continue
                if row.reverse_requested:
                    # Reversed while its post was unanswered, and the post did not land.
                    await record(uow, row.id, booking.not_posted())
                    continue
                resolution = resolve_invoice(payment_of(row), items, accounts.memo_daybook, emails)
                if isinstance(resolution, NeedEmails):  # the e-mails could not be read
                    await work.timeout([row], emails_error or Fault("read", "customer e-mails not read"))
                    continue
                if isinstance(resolution, NotFound):
                    await work.refuse(uow, row, failure(resolution.code, resolution.message))
                    continue
                assert isinstance(resolution, Found)
                memo = await _memo(work, uow, row, resolution.item, access)
                if memo is not None:
                    await record(uow, row.id, booking.post(access.office, resolution.item.customer, _sales(resolution)))
                    to_post.append((row, booking, memo))
            # Committed before the request: from here an unanswered post is looked up, not repeated.
            await uow.commit()
        if not to_post:
            return access, True

        request = documents.transactions(access.office, [memo for _, _, memo in to_post])
        try:
            access, root = await work.gw.call(access, request, credits)
        except OutcomeUnknown as exc:
            log.warning("booker.post_outcome_unknown", bookings=len(to_post), error=str(exc)[:300])
            await work.timeout([r for r, _, _ in to_post], exc)
            return access, True
        except (ConsentLost, NotConnected):
            raise
        except (RateLimited, TokenRejected, TwinfieldError) as exc:
            # Not processed by Twinfield (429, 401, never connected): the next round looks up
            # (they are ``posting``) and posts.
            await work.timeout([r for r, _, _ in to_post], exc)
            return access, True
    await _answered(work, to_post, documents.parse_transactions(root))
    return access, True


def _sales(found: Found) -> tuple[str, str, int]:
    return found.item.daybook, found.item.number, found.item.line


async def _memo(work: Work, uow: Any, row: Any, invoice: OpenItem, access: Access) -> Memo | None:
    try:
        return make_memo(payment_of(row), invoice.customer, access.accounts)
    except MissingCrossAccount as exc:
        await work.refuse(uow, row, failure("not_configured", str(exc)))
        return None


async def _answered(work: Work, to_post: list[tuple[Any, Booking, Memo]], results: list[documents.Posted]) -> None:
    now = datetime.now(UTC)
    async with work.runtime.uow() as uow:
        if len(results) != len(to_post):
            log.error("booker.post_answer_mismatch", sent=len(to_post), answered=len(results))
            return
        for (row, booking, memo), result in zip(to_post, results, strict=True):
            if result.ok and result.number:
                await record(uow, row.id, booking.answer(result.number, memo.customer_line_id, now))
            else:
                await work.refuse(uow, row, answers.refusal(result.messages))
        await uow.commit()
