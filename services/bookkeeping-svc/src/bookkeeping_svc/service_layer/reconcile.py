"""Reconciliation runs (DESIGN.md flow 7): Twikey's own record of what was paid, Koppel's
bookings and Twinfield's MEMOs and matches, compared; every difference on the operator's list.

A run is a row. An operator (API, CLI, console) or the nightly job *requests* it; a worker
claims requested rows with ``FOR UPDATE SKIP LOCKED`` and carries them out, so with several
workers each run happens once. The nightly job inserts tonight's run per tenant under a unique
(tenant, night) key: two workers at the same moment make one run.

Reading, with the progress on the run row after every page:

1. Twikey (through sync-svc, the only service that talks to Twikey): the transaction and pay-link
   feeds replayed from the start, netted per paid item, and the mandate feed, netted per mandate
   (domain/reconcile.py).
2. Koppel: the bookings paid in the window, and every mandate number mandate-svc published.
3. Twinfield (within the shared credit budget, 1 credit a request): the MEMO daybook's customer
   lines one period at a time (browse 100), a full read of each MEMO transaction with a payment
   line no booking claims by its number (browse 100 shows no descriptions, so only the read tells
   whether such a line is Koppel's: our cross-account line and our text), and the sales lines
   matched bookings were matched to, by ranges of transaction numbers.

A run covers whole periods: ``since`` is moved back to the first of its month, so MEMOs and
bookings of the same months are compared.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on, insert

from bookkeeping_svc.adapters.orm import bookings, connections, koppel_mandates, reconcile_differences, reconcile_runs
from bookkeeping_svc.adapters.sync_client import SyncClient, TwikeyRecordUnavailable
from bookkeeping_svc.adapters.twinfield import documents, ledger
from bookkeeping_svc.adapters.twinfield.errors import TwinfieldError
from bookkeeping_svc.domain.reconcile import (
    Booking,
    Comparison,
    LedgerLine,
    net_mandates,
    net_twikey,
    number_ranges,
    periods,
    unclaimed_payments,
)
from bookkeeping_svc.service_layer.gateway import Access, Gateway
from bookkeeping_svc.settings import Settings
from koppel_shared.logging import get_logger, log_context
from koppel_shared.service import Runtime

log = get_logger(__name__)

NUMBER_RANGE = 2000  # sales transaction numbers per browse
ACTIVE = ("requested", "running")


def window_start(since: date) -> date:
    return since.replace(day=1)


class RunFailed(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


# -- requesting and claiming ---------------------------------------------------------------------


async def request_run(session: Any, tenant_id: uuid.UUID, since: date, until: date, trigger: str = "manual") -> Any:
    """A requested run (a worker carries it out); an active run of the tenant is answered instead."""
    active = (
        await session.execute(
            sa.select(reconcile_runs)
            .where(reconcile_runs.c.tenant_id == tenant_id, reconcile_runs.c.status.in_(ACTIVE))
            .order_by(reconcile_runs.c.requested_at)
            .limit(1)
        )
    ).first()
    if active is not None:
        return active
    return (
        await session.execute(
            sa.insert(reconcile_runs)
            .values(
                id=uuid.uuid4(),
                tenant_id=tenant_id,
                trigger=trigger,
                status="requested",
                since=window_start(since),
                until=until,
            )
            .returning(reconcile_runs)
        )
    ).one()


async def request_nightly(runtime: Runtime, settings: Settings, now: datetime) -> int:
    """Tonight's run for every connected tenant, once: the unique (tenant, night) key lets only
    the first of several workers insert it."""
    if not settings.reconcile_nightly or now.hour < settings.reconcile_hour_utc:
        return 0
    night = now.date()
    since = window_start(night - timedelta(days=settings.reconcile_lookback_days))
    stmt = (
        insert(reconcile_runs)
        .from_select(
            ["id", "tenant_id", "trigger", "night", "status", "since", "until"],
            sa.select(
                sa.func.gen_random_uuid(),
                connections.c.tenant_id,
                sa.literal("nightly"),
                sa.literal(night, sa.Date),
                sa.literal("requested"),
                sa.literal(since, sa.Date),
                sa.literal(night, sa.Date),
            ).where(connections.c.status == "connected"),
        )
        .on_conflict_do_nothing()
    )
    async with runtime.uow() as uow:
        made = await uow.session.execute(stmt)
        await uow.commit()
    return int(getattr(made, "rowcount", 0) or 0)


async def claim(runtime: Runtime, stale_seconds: float) -> Any:
    """The oldest requested run (or one whose worker went silent), now ours."""
    stale = datetime.now(UTC) - timedelta(seconds=stale_seconds)
    pick = (
        sa.select(reconcile_runs.c.id)
        .where(
            sa.or_(
                reconcile_runs.c.status == "requested",
                sa.and_(reconcile_runs.c.status == "running", reconcile_runs.c.heartbeat_at < stale),
            )
        )
        .order_by(reconcile_runs.c.requested_at)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    async with runtime.uow() as uow:
        row = (
            await uow.session.execute(
                sa.update(reconcile_runs)
                .where(reconcile_runs.c.id == pick)
                .values(status="running", started_at=sa.func.now(), heartbeat_at=sa.func.now(), progress={})
                .returning(reconcile_runs)
            )
        ).first()
        await uow.commit()
    return row


# -- carrying a run out ----------------------------------------------------------------------------


class Reconciler:
    def __init__(self, runtime: Runtime, gateway: Gateway, sync: SyncClient) -> None:
        self.runtime = runtime
        self.gw = gateway
        self.sync = sync

    async def _progress(self, run_id: uuid.UUID, progress: dict[str, Any]) -> None:
        async with self.runtime.uow() as uow:
            await uow.session.execute(
                sa.update(reconcile_runs)
                .where(reconcile_runs.c.id == run_id)
                .values(progress=dict(progress), heartbeat_at=sa.func.now())
            )
            await uow.commit()

    async def execute(self, run: Any) -> None:
        with log_context(tenant_id=run.tenant_id):
            try:
                found = await self._compare(run)
            except RunFailed as exc:
                await self._finish(run.id, "failed", error=f"{exc.code}: {exc.detail}")
                log.warning("reconcile.failed", run_id=str(run.id), code=exc.code, detail=exc.detail)
                return
            except Exception as exc:
                await self._finish(run.id, "failed", error=f"{type(exc).__name__}: {exc}"[:2000])
                log.exception("reconcile.crashed", run_id=str(run.id))
                return
            opened = await self._store(run, found)
            log.info("reconcile.done", run_id=str(run.id), differences=len(found), open=opened)

    async def _read_twikey(
        self, run: Any, pages: AsyncIterator[list[dict[str, Any]]], counter: str, progress: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Every page of one of Twikey's records, counting what was read on the run's progress."""
        entries: list[dict[str, Any]] = []
        try:
            async for page in pages:
                entries += page
                progress[counter] += len(page)
                await self._progress(run.id, progress)
        except TwikeyRecordUnavailable as exc:
            raise RunFailed(exc.code, exc.detail) from exc
        return entries

    async def _compare(self, run: Any) -> list[Any]:
        progress: dict[str, Any] = {
            "phase": "twikey",
            "twikey_transactions": 0,
            "twikey_paylinks": 0,
            "twikey_mandates": 0,
        }
        await self._progress(run.id, progress)
        entries: list[dict[str, Any]] = []
        for kind, counter in (("transaction", "twikey_transactions"), ("paylink", "twikey_paylinks")):
            entries += await self._read_twikey(run, self.sync.paid_pages(run.tenant_id, kind), counter, progress)
        twikey = net_twikey(entries)
        del entries
        messages = await self._read_twikey(run, self.sync.mandate_pages(run.tenant_id), "twikey_mandates", progress)
        mandates = net_mandates(messages)
        del messages
        progress.update(phase="koppel", twikey_paid_items=len(twikey), twikey_signed_mandates=len(mandates))
        own = await self._bookings(run.tenant_id, run.since)
        published = await self._mandate_numbers(run.tenant_id)
        progress.update(
            phase="twinfield",
            koppel_bookings=len(own),
            koppel_mandates=len(published),
            twinfield_lines=0,
            twinfield_reads=0,
            twinfield_credits=0,
        )
        await self._progress(run.id, progress)
        memo_lines, memo_texts, invoice_lines = await self._twinfield(run, own, progress)
        progress["phase"] = "compare"
        await self._progress(run.id, progress)
        return Comparison(
            twikey,
            own,
            memo_lines,
            invoice_lines,
            memo_texts=memo_texts,
            since=run.since,
            mandates=mandates,
            koppel_mandates=published,
        ).run()

    async def _mandate_numbers(self, tenant_id: uuid.UUID) -> set[str]:
        async with self.runtime.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(koppel_mandates.c.mandate_number).where(koppel_mandates.c.tenant_id == tenant_id)
            )
            return {r.mandate_number for r in rows}

    async def _bookings(self, tenant_id: uuid.UUID, since: date) -> list[Booking]:
        c = bookings.c
        async with self.runtime.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(
                    c.id,
                    c.payment_kind,
                    c.twikey_id,
                    c.reference,
                    c.collection_id,
                    c.invoice_number,
                    c.customer_number,
                    c.amount_cents,
                    c.status,
                    c.paid_on,
                    c.memo_number,
                    c.sales_daybook,
                    c.sales_number,
                    c.sales_line,
                ).where(c.tenant_id == tenant_id, c.paid_on >= since)
            )
            return [
                Booking(
                    id=str(r.id),
                    kind=r.payment_kind,
                    twikey_id=r.twikey_id,
                    reference=r.reference,
                    collection_id=r.collection_id,
                    invoice_number=r.invoice_number,
                    customer_number=r.customer_number,
                    amount_cents=r.amount_cents,
                    status=r.status,
                    paid_on=r.paid_on,
                    memo_number=r.memo_number,
                    sales=(r.sales_daybook, r.sales_number, r.sales_line) if r.sales_number else None,
                )
                for r in rows
            ]

    async def _browse(self, access: Access, request: str, progress: dict[str, Any]) -> tuple[Access, list[LedgerLine]]:
        access, root = await self.gw.call(access, request)
        progress["twinfield_credits"] += 1
        if not documents.ok(root):
            raise RunFailed("twinfield_browse_refused", documents.summary(documents.messages(root)))
        try:
            lines = ledger.parse(root)
        except documents.BrowseShapeError as exc:
            raise RunFailed("twinfield_browse_shape", str(exc)) from exc
        progress["twinfield_lines"] += len(lines)
        return access, lines

    async def _memo_texts(
        self, access: Access, lines: list[LedgerLine], progress: dict[str, Any]
    ) -> tuple[Access, dict[tuple[str, int], str]]:
        """The descriptions of these MEMO lines, one full transaction read per number; only of
        transactions with a line on one of our cross-accounts (others are not Koppel's)."""
        texts: dict[tuple[str, int], str] = {}
        daybook = access.accounts.memo_daybook
        cross = set(access.accounts.cross_accounts.values())
        for number in sorted({line.number for line in lines}):
            access, root = await self.gw.call(access, documents.read_transaction(access.office, daybook, number))
            progress["twinfield_credits"] += 1
            progress["twinfield_reads"] += 1
            read = documents.parse_transaction_read(root)
            if read is None:
                # Never guessed: an unread line could be a second MEMO of one payment.
                raise RunFailed("twinfield_read_refused", documents.summary(documents.messages(root)))
            if any(line.dim1 in cross and not line.dim2 for line in read):
                texts.update(((number, line.id), line.description) for line in read)
        return access, texts

    async def _twinfield(
        self, run: Any, own: list[Booking], progress: dict[str, Any]
    ) -> tuple[list[LedgerLine], dict[tuple[str, int], str], dict[tuple[str, str, int], LedgerLine]]:
        try:
            access = await self.gw.access(run.tenant_id)
            memo_lines: list[LedgerLine] = []
            for period in periods(run.since, run.until):
                access, lines = await self._browse(
                    access, ledger.period_lines(access.accounts.memo_daybook, period), progress
                )
                memo_lines += lines
                await self._progress(run.id, progress)
            access, memo_texts = await self._memo_texts(access, unclaimed_payments(memo_lines, own), progress)
            await self._progress(run.id, progress)
            wanted: dict[str, list[int]] = {}
            for b in own:
                if b.status == "matched" and b.sales and b.sales[1].isdigit():
                    wanted.setdefault(b.sales[0], []).append(int(b.sales[1]))
            invoice_lines: dict[tuple[str, str, int], LedgerLine] = {}
            for daybook, numbers in sorted(wanted.items()):
                for low, high in number_ranges(numbers, NUMBER_RANGE):
                    access, lines = await self._browse(access, ledger.numbered_lines(daybook, low, high), progress)
                    invoice_lines.update((line.key, line) for line in lines)
                    await self._progress(run.id, progress)
        except TwinfieldError as exc:
            raise RunFailed("twinfield_unavailable", f"{type(exc).__name__}: {exc}") from exc
        return memo_lines, memo_texts, invoice_lines

    async def _store(self, run: Any, found: list[Any]) -> int:
        """The run's differences, with what operators decided about the same difference before:
        an ignored one stays ignored, one handed to the errors list stays fixed while it is there."""
        async with self.runtime.uow() as uow:
            earlier = await _earlier_decisions(uow.session, run.tenant_id)
            rows = []
            for d in found:
                status, note, resolution = "open", None, None
                decided = earlier.get((d.kind, d.key))
                if decided is not None:
                    status, note, resolution = decided
                rows.append(
                    {
                        "id": uuid.uuid4(),
                        "tenant_id": run.tenant_id,
                        "run_id": run.id,
                        "kind": d.kind,
                        "key": d.key[:200],
                        "detail": d.detail,
                        "payment_kind": d.payment_kind,
                        "twikey_id": d.twikey_id,
                        "booking_id": uuid.UUID(d.booking_id) if d.booking_id else None,
                        "amount_cents": d.amount_cents,
                        "twikey": d.twikey,
                        "koppel": d.koppel,
                        "twinfield": d.twinfield,
                        "fix": d.fix,
                        "status": status,
                        "note": note,
                        "resolution": resolution,
                    }
                )
            for start in range(0, len(rows), 1000):
                await uow.session.execute(
                    insert(reconcile_differences).on_conflict_do_nothing(), rows[start : start + 1000]
                )
            opened = sum(1 for r in rows if r["status"] == "open")
            await uow.session.execute(
                sa.update(reconcile_runs)
                .where(reconcile_runs.c.id == run.id)
                .values(
                    status="done",
                    differences=len(rows),
                    open_differences=opened,
                    progress=reconcile_runs.c.progress.op("||")(
                        sa.cast({"phase": "done"}, reconcile_runs.c.progress.type)
                    ),
                    finished_at=sa.func.now(),
                    heartbeat_at=sa.func.now(),
                )
            )
            await uow.commit()
        return opened

    async def _finish(self, run_id: uuid.UUID, status: str, error: str | None = None) -> None:
        async with self.runtime.uow() as uow:
            await uow.session.execute(
                sa.update(reconcile_runs)
                .where(reconcile_runs.c.id == run_id)
                .values(status=status, error=error, finished_at=sa.func.now(), heartbeat_at=sa.func.now())
            )
            await uow.commit()


async def _earlier_decisions(session: Any, tenant_id: uuid.UUID) -> dict[tuple[str, str], tuple[str, str | None, str]]:
    """(kind, key) → (status, note, resolution) of the latest difference an operator decided, where the
    decision still holds: ignored, or handed to the errors list with the booking still there."""
    d = reconcile_differences.c
    latest = (
        sa.select(d.kind, d.key, d.status, d.note, d.resolution, d.booking_id)
        .where(d.tenant_id == tenant_id, d.status.in_(("ignored", "fixed")))
        .ext(distinct_on(d.kind, d.key))
        .order_by(d.kind, d.key, d.resolved_at.desc().nulls_last())
    ).subquery()
    on_errors = sa.select(bookings.c.id).where(bookings.c.tenant_id == tenant_id, bookings.c.status == "error")
    rows = await session.execute(
        sa.select(latest).where(
            sa.or_(
                latest.c.status == "ignored",
                sa.and_(latest.c.resolution == "error", latest.c.booking_id.in_(on_errors)),
            )
        )
    )
    return {(r.kind, r.key): (r.status, r.note, r.resolution) for r in rows}
