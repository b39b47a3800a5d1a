"""What operators see of reconciliation and what they do about a difference.

Fixes, each only where it is safe:

- ``book`` (paid at Twikey, not booked): the booking is reopened to ``posting`` (the booker looks
  its reference up in Twinfield before it posts, so an existing MEMO is found, never doubled), or,
  when Koppel has no booking at all, made from Twikey's record and the invoice the operator names
  (Twikey's record does not say which invoice it paid; guessing would move money wrongly);
- ``error``: the booking goes on the bookings errors list with the difference as its message, for
  a person to settle in Twinfield; later runs show the difference as fixed while it is there;
- ``ignore`` with a note: later runs show the same difference as ignored.

A mandate at Twikey unknown to Koppel (fix ``adopt``) is not fixed here: bookkeeping does not own
mandates. The operator adopts it on mandate-svc's unclaimed-mandates list (the next run finds its
``mandate.*`` events and no longer shows it), or ignores the difference here with a note.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from bookkeeping_svc.adapters import repository
from bookkeeping_svc.adapters.orm import bookings, reconcile_differences, reconcile_runs
from bookkeeping_svc.domain.booking import Booking, IllegalTransition
from bookkeeping_svc.domain.reconcile import unclaimed_mandate_path
from bookkeeping_svc.service_layer.booking.work import record
from bookkeeping_svc.service_layer.payments import booking_values, new_booking_status, wake_booker
from koppel_shared.db import UnitOfWork
from koppel_shared.errors import Conflict, Invalid, NotFound
from koppel_shared.events.collection import CollectionPaid

ERROR_CODE = "reconciliation"
ERROR_HINT = (
    "Reconciliation found this payment different in Twikey, Koppel or Twinfield (see the message). "
    "Correct it in Twinfield, then retry the booking."
)


async def list_runs(uow: UnitOfWork, tenant_id: uuid.UUID, limit: int) -> list[Any]:
    stmt = (
        sa.select(reconcile_runs)
        .where(reconcile_runs.c.tenant_id == tenant_id)
        .order_by(reconcile_runs.c.requested_at.desc())
        .limit(limit)
    )
    return list((await uow.session.execute(stmt)).all())


async def get_run(uow: UnitOfWork, tenant_id: uuid.UUID, run_id: uuid.UUID) -> Any:
    row = (
        await uow.session.execute(
            sa.select(reconcile_runs).where(reconcile_runs.c.id == run_id, reconcile_runs.c.tenant_id == tenant_id)
        )
    ).first()
    if row is None:
        raise NotFound("reconcile_run_not_found", f"no reconciliation run {run_id}")
    return row


async def latest_finished(uow: UnitOfWork, tenant_id: uuid.UUID) -> Any:
    return (
        await uow.session.execute(
            sa.select(reconcile_runs)
            .where(reconcile_runs.c.tenant_id == tenant_id, reconcile_runs.c.status == "done")
            .order_by(reconcile_runs.c.finished_at.desc())
            .limit(1)
        )
    ).first()


async def list_differences(
    uow: UnitOfWork, tenant_id: uuid.UUID, run_id: uuid.UUID, status: str | None, limit: int, offset: int
) -> list[Any]:
    d = reconcile_differences.c
    stmt = sa.select(reconcile_differences).where(d.tenant_id == tenant_id, d.run_id == run_id)
    if status is not None:
        stmt = stmt.where(d.status == status)
    stmt = stmt.order_by(d.kind, d.key).limit(limit).offset(offset)
    return list((await uow.session.execute(stmt)).all())


async def _difference(uow: UnitOfWork, tenant_id: uuid.UUID, difference_id: uuid.UUID) -> Any:
    row = (
        await uow.session.execute(
            sa.select(reconcile_differences)
            .where(reconcile_differences.c.id == difference_id, reconcile_differences.c.tenant_id == tenant_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound("difference_not_found", f"no difference {difference_id}")
    if row.status != "open":
        raise Conflict("difference_not_open", f"the difference is {row.status} already")
    return row


async def _resolve(uow: UnitOfWork, row: Any, status: str, resolution: str, note: str | None) -> Any:
    return (
        await uow.session.execute(
            sa.update(reconcile_differences)
            .where(reconcile_differences.c.id == row.id)
            .values(status=status, resolution=resolution, note=note, resolved_at=sa.func.now())
            .returning(reconcile_differences)
        )
    ).one()


async def _book(
    uow: UnitOfWork, tenant_id: uuid.UUID, row: Any, invoice_number: str | None, customer_number: str | None
) -> None:
    if row.fix != "book":
        raise Conflict("fix_not_safe", f"a {row.kind} difference cannot be booked automatically; open an error")
    if row.booking_id is not None:
        booking = await repository.of(uow).get(tenant_id, row.booking_id, lock=True)
        try:
            outcome = Booking.of(booking).reopen(datetime.now(UTC)) if booking is not None else None
        except IllegalTransition:
            outcome = None
        if outcome is None:
            raise Conflict("booking_not_reopenable", "the booking is paused or being reversed; try again later")
        await record(uow, row.booking_id, outcome)
        await wake_booker(uow)
        return
    twikey = row.twikey or {}
    if not invoice_number or not customer_number:
        raise Invalid(
            "invoice_required",
            "Koppel has no booking for this payment and Twikey's record does not name the invoice: "
            "give invoice_number and customer_number",
        )
    now = datetime.now(UTC)
    kind = str(twikey.get("kind") or row.payment_kind)
    paid_on = date.fromisoformat(twikey["paid_on"]) if twikey.get("paid_on") else now.date()
    data = CollectionPaid(
        collection_id=str(twikey.get("reference") or f"reconciled-{kind}-{row.twikey_id}")[:64],
        invoice_id=f"reconciled-{row.id}",
        invoice_number=invoice_number,
        customer_number=customer_number,
        amount_cents=int(twikey.get("amount_cents") or row.amount_cents),
        status="paid",
        method="paylink" if kind == "paylink" else "direct_debit",
        payment_kind=kind,
        twikey_id=row.twikey_id,
        mandate_number=twikey.get("mandate_number"),
        paid_at=datetime(paid_on.year, paid_on.month, paid_on.day, 12, tzinfo=UTC),
        version=1,
        updated_at=now,
    )
    values = booking_values(tenant_id, data, now, f"reconcile:{row.run_id}")
    values.update(await new_booking_status(uow, tenant_id))
    made = await uow.session.execute(
        insert(bookings).values(**values).on_conflict_do_nothing().returning(bookings.c.id)
    )
    if made.first() is None:
        raise Conflict("booking_exists", "a booking for this payment or collection exists meanwhile; run again")
    await wake_booker(uow)


async def _open_error(uow: UnitOfWork, tenant_id: uuid.UUID, row: Any) -> None:
    if row.booking_id is None:
        raise Conflict("no_booking", "Koppel has no booking for this difference; book it or ignore it")
    booking = await repository.of(uow).get(tenant_id, row.booking_id, lock=True)
    if booking is not None:
        outcome = Booking.of(booking).open_error(ERROR_CODE, f"{row.kind}: {row.detail}", ERROR_HINT)
        await record(uow, row.booking_id, outcome)


async def apply_fix(
    uow: UnitOfWork,
    tenant_id: uuid.UUID,
    difference_id: uuid.UUID,
    action: str,
    note: str | None = None,
    invoice_number: str | None = None,
    customer_number: str | None = None,
) -> Any:
    row = await _difference(uow, tenant_id, difference_id)
    if row.fix == "adopt" and action != "ignore":
        raise Conflict(
            "fix_in_unclaimed_mandates",
            f"mandates are adopted in mandate-svc: POST {unclaimed_mandate_path(row.twikey_id)}/adopt "
            "(or ignore this difference with a note)",
        )
    if action == "book":
        await _book(uow, tenant_id, row, invoice_number, customer_number)
        return await _resolve(uow, row, "fixed", "book", note)
    if action == "error":
        await _open_error(uow, tenant_id, row)
        return await _resolve(uow, row, "fixed", "error", note)
    if not note or not note.strip():
        raise Invalid("note_required", "say why the difference is ignored")
    return await _resolve(uow, row, "ignored", "ignore", note.strip())
