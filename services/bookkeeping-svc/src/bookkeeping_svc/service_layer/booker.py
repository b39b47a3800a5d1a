"""The booking engine: a worker loop that books paid collections in Twinfield, per tenant, in
batches of at most 25, within the fair-use credits.

One writer per organisation: a tenant's work runs under a PostgreSQL advisory lock on its
Twinfield organisation, so with several workers exactly one talks to an organisation at a time.

One round for a tenant, each step one request for up to 25 bookings:

1. **look up** (``<columns code="100">``, 1 credit per invoice number: Twinfield shows no
   operator that lists several): the customer lines of the invoice number, every daybook and
   year. The same rows answer two questions: which open sales line does the payment belong to?
   and is *our* MEMO already there? A MEMO customer line with the invoice number and the paid
   amount on the payment's side is a candidate; its transaction is read (``<read><type>
   transaction``, 1 credit, only when such a line exists) and ours when the transaction has our
   cross-account line and the customer line's description is ours (the invoice number's first
   40 characters, or "<reference> betaling" of older MEMOs), and no other booking keeps its
   number. Browse 100 has no description column (the real definition shows none), so the full
   read decides. Found: booked, never posted again (this is how a timeout after Twinfield
   applied the write is resolved).
2. **post** (``<transactions>``, 3 credits): the MEMOs; bookings are marked ``posting`` and
   committed *before* the request, so an unanswered post is looked up, not repeated.
3. **match** (``<match>`` with one set per booking, 3 credits).

So 25 payments of 25 invoices cost 25 + 3 + 3 = 31 credits. Reversals (counter MEMOs) and
customer bank/mandate updates run in the same turn, in their own requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bookkeeping_svc.adapters.orm import bookings, connections, customer_updates
from bookkeeping_svc.adapters.twinfield import documents
from bookkeeping_svc.adapters.twinfield.client import (
    ConsentLost,
    Fault,
    OutcomeUnknown,
    RateLimited,
    TokenRejected,
    TwinfieldError,
)
from bookkeeping_svc.domain.booking import (
    ACTIVE,
    Memo,
    MissingCrossAccount,
    Payment,
    Status,
    last40,
    own_descriptions,
    payment_memo,
    reversal_memo,
)
from bookkeeping_svc.domain.errors import HINTS, Classified, classify
from bookkeeping_svc.domain.invoices import Found, NeedEmails, NotFound, OpenItem, find_own_memo, resolve_invoice
from bookkeeping_svc.service_layer.events import booking_event
from bookkeeping_svc.service_layer.gateway import Access, Gateway, NotConnected
from bookkeeping_svc.service_layer.payments import WAKE_CHANNEL
from bookkeeping_svc.settings import Settings
from koppel_shared.db import asyncpg_dsn
from koppel_shared.events.booking import BookingBooked, BookingFailed, BookingReversed
from koppel_shared.logging import get_logger, log_context
from koppel_shared.pgnotify import listen, wait_for_wake
from koppel_shared.service import Runtime

log = get_logger(__name__)

MAX_BATCHES_PER_TURN = 20
TENANTS_IN_PARALLEL = 4
LOOKUP_COST, WRITE_COST = 1, 3  # Twinfield's credits for a query and for any other request


def classify_messages(msgs: list[documents.Message]) -> Classified:
    """The first error decides (a warning only when there is no error)."""
    first = next(iter(documents.errors_first(msgs)), None)
    return classify(first.text, first.node, first.kind) if first else HINTS["validation"]


def customer_update_error(msgs: list[documents.Message]) -> Classified:
    """A refused customer update: an error on the dimension's ``code`` ("Dimensie 1001 bestaat
    niet." / "Dimension 1001 does not exist.") or a demand for a ``name`` (Twinfield would create
    the customer) means the customer is not there; anything else is read like any message."""
    errors = [m for m in msgs if m.kind == "error"]
    if any(m.node in ("code", "name") for m in errors):
        return HINTS["unknown_customer"]
    # Where the element says nothing (the message on the whole dimension), the wording decides.
    if any(
        re.search(r"naam is verplicht|name is (required|mandatory)|bestaat niet|does not exist", m.text, re.I)
        for m in errors
    ):
        return HINTS["unknown_customer"]
    return classify_messages(msgs)


def payment_of(row: Any) -> Payment:
    return Payment(
        reference=row.reference,
        invoice_number=row.invoice_number,
        customer_number=row.customer_number,
        customer_email=row.customer_email,
        amount_cents=row.amount_cents,
        method=row.method,
        paid_on=row.paid_on,
    )


class Booker:
    def __init__(self, runtime: Runtime, gateway: Gateway, settings: Settings) -> None:
        self.runtime = runtime
        self.gw = gateway
        self.settings = settings
        self._backoff: dict[uuid.UUID, float] = {}

    # -- loop ------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """A turn for every tenant with due work, each on its own (a tenant never waits for
        another's long turn), at most ``TENANTS_IN_PARALLEL`` at once. Between looks, sleep until
        a commit makes a booking due (``NOTIFY``), a turn ends, or the poll interval passes (for
        retries whose time has come)."""
        wake = asyncio.Event()
        listener = asyncio.create_task(listen(asyncpg_dsn(self.settings.database_url), WAKE_CHANNEL, wake, stop))
        gate = asyncio.Semaphore(TENANTS_IN_PARALLEL)
        turns: dict[uuid.UUID, asyncio.Task[None]] = {}

        async def turn(tenant_id: uuid.UUID) -> None:
            worked = False
            try:
                async with gate:
                    worked = await self.tenant_turn(tenant_id)
            except Exception as exc:  # a broken turn must not end the loop
                log.exception("booker.turn_failed", tenant_id=str(tenant_id), error=repr(exc))
            finally:
                turns.pop(tenant_id, None)
                if worked:  # there may be more (a turn stops after MAX_BATCHES_PER_TURN)
                    wake.set()

        try:
            while not stop.is_set():
                wake.clear()
                try:
                    now = time.monotonic()
                    for tenant_id in await self._due_tenants():
                        if tenant_id not in turns and self._backoff.get(tenant_id, 0.0) <= now:
                            turns[tenant_id] = asyncio.create_task(turn(tenant_id))
                except Exception as exc:  # database away: look again after the poll interval
                    log.warning("booker.look_failed", error=repr(exc))
                await wait_for_wake(wake, stop, self.settings.booker_poll_seconds)
        finally:
            listener.cancel()
            for task in turns.values():
                task.cancel()
            await asyncio.gather(listener, *turns.values(), return_exceptions=True)

    async def _due_tenants(self) -> list[uuid.UUID]:
        connected = sa.select(connections.c.tenant_id).where(connections.c.status == "connected")
        due_bookings = sa.select(bookings.c.tenant_id).where(
            bookings.c.status.in_(ACTIVE),
            bookings.c.next_attempt_at <= sa.func.now(),
            bookings.c.tenant_id.in_(connected),
        )
        due_updates = sa.select(customer_updates.c.tenant_id).where(
            customer_updates.c.status == "open",
            customer_updates.c.next_attempt_at <= sa.func.now(),
            customer_updates.c.tenant_id.in_(connected),
        )
        async with self.runtime.engine.connect() as conn:
            rows = await conn.execute(sa.union(due_bookings, due_updates))
            return [uuid.UUID(str(r[0])) for r in rows]

    async def tenant_turn(self, tenant_id: uuid.UUID) -> bool:
        """Work off a tenant's due bookings while holding its organisation's writer lock."""
        async with self.runtime.engine.connect() as conn:
            org = (
                await conn.execute(
                    sa.select(
                        sa.func.coalesce(connections.c.organisation, sa.cast(connections.c.tenant_id, sa.Text))
                    ).where(connections.c.tenant_id == tenant_id)
                )
            ).scalar_one_or_none()
            key = sa.func.hashtext(f"koppel-twinfield-writer:{org or tenant_id}")
            if not (await conn.execute(sa.select(sa.func.pg_try_advisory_lock(key)))).scalar():
                return False  # another worker writes to this organisation now
            await conn.commit()
            try:
                with log_context(tenant_id=tenant_id):
                    return await self._turn(tenant_id)
            finally:
                await conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                await conn.commit()

    async def _turn(self, tenant_id: uuid.UUID) -> bool:
        try:
            access = await self.gw.access(tenant_id)
        except ConsentLost:
            return True
        except NotConnected:
            return False
        except TwinfieldError as exc:
            log.warning("booker.no_access", error=str(exc))
            self._backoff[tenant_id] = time.monotonic() + self.settings.transient_backoff_seconds
            return False
        worked = False
        try:
            for _ in range(MAX_BATCHES_PER_TURN):
                step = False
                access, did = await self.book_batch(access)
                step |= did
                access, did = await self.match_batch(access)
                step |= did
                access, did = await self.reverse_batch(access)
                step |= did
                access, did = await self.update_customers(access)
                step |= did
                worked |= step
                if not step:
                    break
        except ConsentLost:
            return True
        except NotConnected:
            return worked
        return worked

    # -- helpers ---------------------------------------------------------------------------------

    async def _due(self, tenant_id: uuid.UUID, statuses: Sequence[str], *extra: Any, limit: int = 0) -> list[Any]:
        async with self.runtime.uow() as uow:
            stmt = (
                sa.select(bookings)
                .where(
                    bookings.c.tenant_id == tenant_id,
                    bookings.c.status.in_(statuses),
                    bookings.c.next_attempt_at <= sa.func.now(),
                    *extra,
                )
                .order_by(bookings.c.next_attempt_at, bookings.c.created_at)
                .limit(limit or self.settings.batch_size)
            )
            return list((await uow.session.execute(stmt)).all())

    def _backoff_at(self, failures: int) -> datetime:
        delay = self.settings.transient_backoff_seconds * (2 ** min(failures, 6))
        return datetime.now(UTC) + timedelta(seconds=delay)

    async def _set(self, booking_id: uuid.UUID, event: type | None = None, **values: Any) -> None:
        """Change one booking (bumping its version) and, for an event-worthy change, emit it in
        the same transaction."""
        async with self.runtime.uow() as uow:
            await self._set_in(uow, booking_id, event, **values)
            await uow.commit()

    async def _set_in(self, uow: Any, booking_id: uuid.UUID, event: type | None = None, **values: Any) -> None:
        values.setdefault("updated_at", sa.func.now())
        row = (
            await uow.session.execute(
                sa.update(bookings)
                .where(bookings.c.id == booking_id)
                .values(version=bookings.c.version + 1, **values)
                .returning(bookings)
            )
        ).one()
        if event is not None:
            await uow.emit(booking_event(event, row))

    async def _fail(self, uow: Any, booking_id: uuid.UUID, code: str, message: str, hint: str | None = None) -> None:
        await self._set_in(
            uow,
            booking_id,
            BookingFailed,
            status=Status.ERROR,
            error_code=code,
            error_message=message[:2000],
            hint=hint or HINTS[code].hint if code in HINTS else hint,
        )

    async def _transient(self, rows: list[Any], exc: Exception, keep_status: bool = True) -> None:
        """Nothing was applied (or we will look before acting): back off, and after too many
        tries put the bookings on the errors list."""
        code = "rate_limited" if isinstance(exc, RateLimited) else "unavailable"
        async with self.runtime.uow() as uow:
            for row in rows:
                failures = row.transient_failures + 1
                if failures >= self.settings.transient_attempts:
                    await self._fail(uow, row.id, code, f"{type(exc).__name__}: {exc}")
                    continue
                await uow.session.execute(
                    sa.update(bookings)
                    .where(bookings.c.id == row.id)
                    .values(
                        transient_failures=failures,
                        next_attempt_at=self._backoff_at(failures),
                        error_message=f"{type(exc).__name__}: {exc}"[:2000],
                        updated_at=sa.func.now(),
                    )
                )
            await uow.commit()
        log.warning("booker.transient", code=code, bookings=len(rows), error=str(exc)[:300])

    async def _browse(
        self, access: Access, invoice_numbers: list[str], paid: bool = False
    ) -> tuple[Access, list[OpenItem]]:
        """Customer lines of these invoice numbers, one ``equal`` request each. ``paid``: the
        credits of the first request are reserved already."""
        rows: list[OpenItem] = []
        year = datetime.now(UTC).year
        for index, number in enumerate(sorted(set(invoice_numbers))):
            request = documents.browse_customer_lines(number, year)
            access, root = await self.gw.call(access, request, paid=paid and index == 0)
            if not documents.ok(root):
                raise Fault("browse", documents.summary(documents.messages(root)))
            try:
                rows += documents.parse_browse(root)
            except documents.BrowseShapeError as exc:
                raise Fault("browse", str(exc)) from exc
        return access, rows

    async def _with_memo_texts(
        self, access: Access, items: list[OpenItem], sign: int, amounts: set[int]
    ) -> tuple[Access, list[OpenItem]]:
        """The rows with the description of our candidate MEMO lines filled in from a full read
        of their transaction: MEMO daybook, on the side ``sign`` (-1 credit: a payment, +1 debit:
        a reversal), for one of the ``amounts``, in a transaction with a line on one of our
        cross-accounts (a bookkeeper's own MEMO of the same invoice keeps no description). Other
        rows are returned as they are."""
        memo_daybook = access.accounts.memo_daybook
        cross = set(access.accounts.cross_accounts.values())
        texts: dict[tuple[str, int], str] = {}
        candidates = [
            r for r in items if r.daybook == memo_daybook and r.value_cents * sign > 0 and abs(r.value_cents) in amounts
        ]
        for number in sorted({r.number for r in candidates}):
            access, root = await self.gw.call(access, documents.read_transaction(access.office, memo_daybook, number))
            read = documents.parse_transaction_read(root)
            if read is None:
                # An unread candidate could be our MEMO: posting again could book it twice.
                raise Fault("read", documents.summary(documents.messages(root)))
            if not any(line.dim1 in cross and not line.dim2 for line in read):
                continue
            for line in read:
                texts[(number, line.id)] = line.description
        return access, [
            dataclasses.replace(r, description=texts.get((r.number, r.line), "")) if r in candidates else r
            for r in items
        ]

    async def _claimed(self, tenant_id: uuid.UUID, rows: list[Any], column: Any) -> set[str]:
        """The MEMO numbers (``column``: payment or counter MEMO) that bookings of these invoices
        keep already: never anyone else's MEMO."""
        async with self.runtime.engine.connect() as conn:
            found = await conn.execute(
                sa.select(column).where(
                    bookings.c.tenant_id == tenant_id,
                    bookings.c.invoice_number.in_({r.invoice_number for r in rows}),
                    column.is_not(None),
                )
            )
            return {str(number) for (number,) in found}

    async def _emails(self, access: Access, customers: tuple[str, ...]) -> tuple[Access, dict[str, str | None]]:
        emails: dict[str, str | None] = {}
        for code in customers:
            access, root = await self.gw.call(access, documents.read_customer(access.office, code))
            emails[code] = documents.customer_email(root) if documents.ok(root) else None
        return access, emails

    # -- 1 + 2: look up, then post ---------------------------------------------------------------

    async def book_batch(self, access: Access) -> tuple[Access, bool]:
        statuses = (Status.OPEN, Status.POSTING)
        if not await self._due(access.tenant_id, statuses, limit=1):
            return access, False
        # Credits for the look-up and the post first: while the budget makes us wait, more
        # payments arrive and join this batch.
        await self.gw.reserve(access, LOOKUP_COST + WRITE_COST)
        rows = await self._due(access.tenant_id, statuses)
        if not rows:
            await self.gw.refund(access, LOOKUP_COST + WRITE_COST)
            return access, False
        accounts = access.accounts
        try:
            access, items = await self._browse(access, [last40(r.invoice_number) for r in rows], paid=True)
            amounts = {r.amount_cents for r in rows}
            access, items = await self._with_memo_texts(access, items, -1, amounts)
        except (ConsentLost, NotConnected):
            raise
        except TwinfieldError as exc:
            await self.gw.refund(access, WRITE_COST)
            await self._transient(rows, exc)
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
                access, emails = await self._emails(access, tuple(sorted(wanted)))
            except TwinfieldError as exc:
                if isinstance(exc, ConsentLost):
                    raise
                emails_error = exc
        claimed = await self._claimed(access.tenant_id, rows, bookings.c.memo_number)
        to_post: list[tuple[Any, Memo, OpenItem]] = []
        async with self.runtime.uow() as uow:
            for row in rows:
                payment = payment_of(row)
                texts = own_descriptions(row.reference, row.invoice_number)
                own = find_own_memo(items, row.invoice_number, texts, claimed)
                if own is not None and own.daybook == accounts.memo_daybook and own.value_cents < 0:
                    claimed.add(own.number)
                    # Already in Twinfield (an earlier post whose answer was lost): never again.
                    await self._set_in(
                        uow,
                        row.id,
                        None,
                        status=Status.REVERSING if row.reverse_requested else Status.BOOKED,
                        memo_number=own.number,
                        memo_line=own.line,
                        office=access.office,
                        customer_code=row.customer_code or own.customer,
                        booked_at=sa.func.now(),
                        error_code=None,
                        next_attempt_at=sa.func.now(),
                    )
                    log.info("booking.found_existing_memo", booking_id=str(row.id), memo=own.number)
                    continue
                if row.reverse_requested:
                    # Reversed while its post was unanswered, and the post did not land: nothing to undo.
                    await self._set_in(uow, row.id, BookingReversed, status=Status.REVERSED)
                    continue
                resolution = resolve_invoice(payment, items, accounts.memo_daybook, emails)
                if isinstance(resolution, NeedEmails):  # the e-mails could not be read
                    await self._transient([row], emails_error or Fault("read", "customer e-mails not read"))
                    continue
                if isinstance(resolution, NotFound):
                    await self._fail(uow, row.id, resolution.code, resolution.message)
                    continue
                assert isinstance(resolution, Found)
                invoice = resolution.item
                try:
                    memo = payment_memo(payment, invoice.customer, accounts)
                except MissingCrossAccount as exc:
                    await self._fail(uow, row.id, "not_configured", str(exc))
                    continue
                to_post.append((row, memo, invoice))
            if to_post:
                await uow.session.execute(
                    sa.update(bookings)
                    .where(bookings.c.id == sa.bindparam("b_id"))
                    .values(
                        status=Status.POSTING,
                        office=access.office,
                        customer_code=sa.bindparam("b_customer"),
                        sales_daybook=sa.bindparam("b_daybook"),
                        sales_number=sa.bindparam("b_number"),
                        sales_line=sa.bindparam("b_line"),
                        attempts=bookings.c.attempts + 1,
                        version=bookings.c.version + 1,
                        updated_at=sa.func.now(),
                    ),
                    [
                        {
                            "b_id": row.id,
                            "b_customer": invoice.customer,
                            "b_daybook": invoice.daybook,
                            "b_number": invoice.number,
                            "b_line": invoice.line,
                        }
                        for row, _, invoice in to_post
                    ],
                )
            # Committed before the request: from here an unanswered post is looked up, not repeated.
            await uow.commit()
        if not to_post:
            await self.gw.refund(access, WRITE_COST)
            return access, True

        request = documents.transactions(access.office, [memo for _, memo, _ in to_post])
        try:
            access, root = await self.gw.call(access, request, paid=True)
        except OutcomeUnknown as exc:
            log.warning("booker.post_outcome_unknown", bookings=len(to_post), error=str(exc)[:300])
            await self._transient([r for r, _, _ in to_post], exc)
            return access, True
        except (ConsentLost, NotConnected):
            raise
        except (RateLimited, TokenRejected, TwinfieldError) as exc:
            # Not processed by Twinfield (429, 401, never connected): the next round looks up
            # (they are ``posting``) and posts.
            await self._transient([r for r, _, _ in to_post], exc)
            return access, True

        results = documents.parse_transactions(root)
        async with self.runtime.uow() as uow:
            if len(results) != len(to_post):
                log.error("booker.post_answer_mismatch", sent=len(to_post), answered=len(results))
                await uow.commit()
                return access, True
            booked: list[dict[str, Any]] = []
            for (row, memo, _), result in zip(to_post, results, strict=True):
                if result.ok and result.number:
                    booked.append(
                        {
                            "b_id": row.id,
                            "b_status": Status.REVERSING if row.reverse_requested else Status.BOOKED,
                            "b_memo": result.number,
                            "b_line": memo.customer_line_id,
                        }
                    )
                else:
                    classified = classify_messages(result.messages)
                    await self._fail(uow, row.id, classified.code, documents.summary(result.messages))
            if booked:
                await uow.session.execute(
                    sa.update(bookings)
                    .where(bookings.c.id == sa.bindparam("b_id"))
                    .values(
                        status=sa.bindparam("b_status"),
                        memo_number=sa.bindparam("b_memo"),
                        memo_line=sa.bindparam("b_line"),
                        booked_at=sa.func.now(),
                        transient_failures=0,
                        error_code=None,
                        error_message=None,
                        hint=None,
                        next_attempt_at=sa.func.now(),
                        version=bookings.c.version + 1,
                        updated_at=sa.func.now(),
                    ),
                    booked,
                )
            await uow.commit()
        return access, True

    # -- 3: match --------------------------------------------------------------------------------

    async def match_batch(self, access: Access) -> tuple[Access, bool]:
        matchable = (bookings.c.memo_number.is_not(None), bookings.c.sales_number.is_not(None))
        if not await self._due(access.tenant_id, (Status.BOOKED,), *matchable, limit=1):
            return access, False
        await self.gw.reserve(access, WRITE_COST)
        rows = await self._due(access.tenant_id, (Status.BOOKED,), *matchable)
        if not rows:
            await self.gw.refund(access, WRITE_COST)
            return access, False
        accounts = access.accounts
        sets = [
            (
                documents.MatchLine(r.sales_daybook, r.sales_number, r.sales_line),
                documents.MatchLine(accounts.memo_daybook, r.memo_number, r.memo_line),
            )
            for r in rows
        ]
        today = datetime.now(UTC).date()
        try:
            access, root = await self.gw.call(access, documents.match(access.office, sets, today), paid=True)
        except (ConsentLost, NotConnected):
            raise
        except TwinfieldError as exc:
            # Matching is naturally idempotent: a repeat of an applied match fails ("niet
            # beschikbaar voor afletteren"), and the lines' status then shows it was applied.
            await self._transient(rows, exc)
            return access, True
        results = documents.parse_match(root)
        failed = [row for row, result in zip(rows, results, strict=False) if not result.ok]
        access, done_before = await self._matched_in_twinfield(access, failed)
        async with self.runtime.uow() as uow:
            matched: list[uuid.UUID] = []
            for row, result in zip(rows, results, strict=False):
                if result.ok or row.id in done_before:
                    matched.append(row.id)
                else:
                    classified = classify_messages(result.messages)
                    await self._fail(uow, row.id, classified.code, documents.summary(result.messages))
            if matched:
                done = (
                    await uow.session.execute(
                        sa.update(bookings)
                        .where(bookings.c.id.in_(matched))
                        .values(
                            status=Status.MATCHED,
                            matched_at=sa.func.now(),
                            transient_failures=0,
                            error_code=None,
                            error_message=None,
                            hint=None,
                            version=bookings.c.version + 1,
                            updated_at=sa.func.now(),
                        )
                        .returning(bookings)
                    )
                ).all()
                await uow.emit(*(booking_event(BookingBooked, r) for r in done))
            await uow.commit()
        return access, True

    async def _matched_in_twinfield(self, access: Access, rows: list[Any]) -> tuple[Access, set[uuid.UUID]]:
        """Bookings of failed match sets whose MEMO line Twinfield shows as ``matched`` (an
        earlier match whose answer was lost). Decided on the line's status, never on the wording
        of the failure; ``proposed`` (in a payment-run proposal) is not matched."""
        if not rows:
            return access, set()
        try:
            access, items = await self._browse(access, [last40(r.invoice_number) for r in rows])
        except (ConsentLost, NotConnected):
            raise
        except TwinfieldError as exc:
            log.warning("booker.match_check_failed", error=str(exc)[:300])
            return access, set()
        status = {(i.daybook, i.number, i.line): i.matchstatus for i in items}
        memo_daybook = access.accounts.memo_daybook
        return access, {r.id for r in rows if status.get((memo_daybook, r.memo_number, r.memo_line)) == "matched"}

    # -- reversals -------------------------------------------------------------------------------

    async def reverse_batch(self, access: Access) -> tuple[Access, bool]:
        """Counter MEMOs for reversed collections. UndoMatch (matching.asmx) is not part of
        ProcessXml (and not in the sandbox); the counter MEMO's customer line is a debit open item
        carrying the invoice number, so the receivable is open again and the cross-account is
        cleared. A payment that was never matched is matched against its counter MEMO."""
        rows = await self._due(access.tenant_id, (Status.REVERSING,), bookings.c.memo_number.is_not(None))
        if not rows:
            return access, False
        accounts = access.accounts
        try:
            access, items = await self._browse(access, [last40(r.invoice_number) for r in rows])
            access, items = await self._with_memo_texts(access, items, 1, {r.amount_cents for r in rows})
        except (ConsentLost, NotConnected):
            raise
        except TwinfieldError as exc:
            await self._transient(rows, exc)
            return access, True
        claimed = await self._claimed(access.tenant_id, rows, bookings.c.reversal_memo_number)
        to_post: list[tuple[Any, Memo]] = []
        async with self.runtime.uow() as uow:
            for row in rows:
                texts = own_descriptions(row.reference, row.invoice_number, reversal=True)
                own = find_own_memo(items, row.invoice_number, texts, claimed)
                if own is not None and own.daybook == accounts.memo_daybook and own.value_cents > 0:
                    claimed.add(own.number)
                    await self._set_in(
                        uow, row.id, BookingReversed, status=Status.REVERSED, reversal_memo_number=own.number
                    )
                    continue
                on = row.reversed_on or datetime.now(UTC).date()
                try:
                    memo = reversal_memo(payment_of(row), row.customer_code, accounts, on)
                except MissingCrossAccount as exc:
                    await self._fail(uow, row.id, "not_configured", str(exc))
                    continue
                to_post.append((row, memo))
                await self._set_in(uow, row.id, None, reversal_posting=True)
            await uow.commit()
        if not to_post:
            return access, True
        try:
            access, root = await self.gw.call(access, documents.transactions(access.office, [m for _, m in to_post]))
        except (ConsentLost, NotConnected):
            raise
        except TwinfieldError as exc:
            await self._transient([r for r, _ in to_post], exc)
            return access, True
        results = documents.parse_transactions(root)
        unmatched: list[tuple[documents.MatchLine, documents.MatchLine]] = []
        async with self.runtime.uow() as uow:
            for (row, memo), result in zip(to_post, results, strict=False):
                if result.ok and result.number:
                    await self._set_in(
                        uow,
                        row.id,
                        BookingReversed,
                        status=Status.REVERSED,
                        reversal_memo_number=result.number,
                        reversal_posting=False,
                    )
                    if row.matched_at is None:
                        unmatched.append(
                            (
                                documents.MatchLine(accounts.memo_daybook, row.memo_number, row.memo_line),
                                documents.MatchLine(accounts.memo_daybook, result.number, memo.customer_line_id),
                            )
                        )
                else:
                    classified = classify_messages(result.messages)
                    await self._fail(uow, row.id, classified.code, documents.summary(result.messages))
            await uow.commit()
        if unmatched:
            with contextlib.suppress(TwinfieldError):
                access, _ = await self.gw.call(
                    access, documents.match(access.office, unmatched, datetime.now(UTC).date())
                )
        return access, True

    # -- customers: bank account and collect mandate ---------------------------------------------

    async def update_customers(self, access: Access) -> tuple[Access, bool]:
        async with self.runtime.uow() as uow:
            rows = list(
                (
                    await uow.session.execute(
                        sa.select(customer_updates)
                        .where(
                            customer_updates.c.tenant_id == access.tenant_id,
                            customer_updates.c.status == "open",
                            customer_updates.c.next_attempt_at <= sa.func.now(),
                        )
                        .order_by(customer_updates.c.created_at)
                        .limit(self.settings.batch_size)
                    )
                ).all()
            )
        if not rows:
            return access, False
        updates = [
            documents.CustomerBank(
                code=r.customer_code,
                iban=r.iban,
                bic=r.bic,
                ascription=r.ascription,
                mandate_id=r.mandate_number,
                signature_date=r.signature_date,
                scheme=r.scheme,
            )
            for r in rows
        ]
        try:
            access, root = await self.gw.call(access, documents.customer_bank_update(access.office, updates))
            results = documents.parse_dimensions(root)
        except (ConsentLost, NotConnected):
            raise
        except TwinfieldError as exc:
            # A repeated bank/mandate update is harmless (banks merge on IBAN), so no look-up.
            async with self.runtime.uow() as uow:
                for r in rows:
                    await uow.session.execute(
                        sa.update(customer_updates)
                        .where(customer_updates.c.id == r.id)
                        .values(
                            attempts=r.attempts + 1,
                            next_attempt_at=self._backoff_at(r.attempts + 1),
                            error_message=str(exc)[:2000],
                            updated_at=sa.func.now(),
                        )
                    )
                await uow.commit()
            return access, True
        async with self.runtime.uow() as uow:
            for r, (ok, msgs) in zip(rows, results, strict=False):
                values: dict[str, Any] = {"attempts": r.attempts + 1, "updated_at": sa.func.now()}
                if ok:
                    values.update(status="done", error_message=None, hint=None)
                else:
                    values.update(
                        status="error",
                        error_message=documents.summary(msgs),
                        hint=customer_update_error(msgs).hint,
                    )
                await uow.session.execute(
                    sa.update(customer_updates).where(customer_updates.c.id == r.id).values(**values)
                )
            await uow.commit()
        return access, True


async def sweep(runtime: Runtime) -> int:
    """The nightly sweep: everything open or failed gets another go now."""
    from bookkeeping_svc.service_layer.intake import retry_all

    async with runtime.uow() as uow:
        count = await retry_all(uow)
        await uow.commit()
    log.info("booker.sweep", requeued=count)
    return count
