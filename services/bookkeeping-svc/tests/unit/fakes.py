"""In-memory stand-ins for bookkeeping-svc's booking repository and the runtime the booking steps
open their transactions on, for unit tests of the use cases (no PostgreSQL, no broker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

from bookkeeping_svc.adapters.orm import bookings
from bookkeeping_svc.adapters.repository import SqlBookingRepository
from bookkeeping_svc.domain.booking import Outcome
from bookkeeping_svc.service_layer.booking.work import Work
from bookkeeping_svc.settings import Settings
from koppel_shared.testing.fakes import FakeUnitOfWork

TENANT = uuid.UUID("33333333-3333-4333-8333-333333333333")


def booking_row(**values: Any) -> SimpleNamespace:
    """A ``bookings`` row as PostgreSQL would hand it back: every column, defaults filled in."""
    now = datetime.now(UTC)
    row: dict[str, Any] = {c.name: None for c in bookings.columns}
    row.update(
        id=uuid.uuid4(),
        tenant_id=TENANT,
        collection_id=str(uuid.uuid4()),
        payment_kind="transaction",
        twikey_id="TX-1",
        reference="TX1",
        invoice_number="INV-2025-001",
        customer_number="1001",
        amount_cents=12_345,
        method="direct_debit",
        paid_on=date(2025, 3, 14),
        status="open",
        reverse_requested=False,
        reversal_posting=False,
        attempts=0,
        transient_failures=0,
        next_attempt_at=now,
        version=1,
        created_at=now,
        updated_at=now,
    )
    row.update(values)
    return SimpleNamespace(**row)


@dataclass
class FakeBookings:
    """``BookingRepository`` over a dict of rows; ``save`` stores a transition's outcome the way
    the SQL one does (its changes, the version bumped, ``updated_at`` set)."""

    rows: dict[uuid.UUID, SimpleNamespace] = field(default_factory=dict)
    wakes: int = 0

    def add(self, row: SimpleNamespace) -> SimpleNamespace:
        self.rows[row.id] = row
        return row

    async def get(self, tenant_id: uuid.UUID, booking_id: uuid.UUID, *, lock: bool = False) -> Any:
        row = self.rows.get(booking_id)
        return row if row is not None and row.tenant_id == tenant_id else None

    async def due(self, tenant_id: uuid.UUID, statuses: Sequence[str], *extra: Any, limit: int) -> list[Any]:
        if extra:
            raise NotImplementedError("extra SQL conditions have no in-memory meaning")
        now = datetime.now(UTC)
        found = [
            r
            for r in self.rows.values()
            if r.tenant_id == tenant_id and r.status in statuses and r.next_attempt_at <= now
        ]
        return sorted(found, key=lambda r: (r.next_attempt_at, r.created_at))[:limit]

    async def memo_numbers(self, tenant_id: uuid.UUID, invoice_numbers: Iterable[str], reversal: bool) -> set[str]:
        wanted = set(invoice_numbers)
        column = "reversal_memo_number" if reversal else "memo_number"
        return {
            str(getattr(r, column))
            for r in self.rows.values()
            if r.tenant_id == tenant_id and r.invoice_number in wanted and getattr(r, column) is not None
        }

    async def save(self, booking_id: uuid.UUID, outcome: Outcome) -> Any:
        row = self.rows[booking_id]
        for name, value in outcome.changes.items():
            setattr(row, name, str(value) if name in ("status", "paused_from") and value is not None else value)
        row.version += 1
        row.updated_at = datetime.now(UTC)
        return row

    async def wake(self) -> None:
        self.wakes += 1


def fake_uow() -> tuple[FakeUnitOfWork, FakeBookings]:
    repo = FakeBookings()
    return FakeUnitOfWork({SqlBookingRepository: repo}), repo


def work_on(uow: FakeUnitOfWork, **settings: Any) -> Work:
    """The booking steps' context on the fake: ``runtime.uow()`` is the fake unit of work; no
    Twinfield gateway (the steps driven here make no call)."""
    runtime = SimpleNamespace(uow=uow, settings=Settings(**settings))
    return Work(runtime=runtime, gw=None, settings=runtime.settings)  # type: ignore[arg-type]
