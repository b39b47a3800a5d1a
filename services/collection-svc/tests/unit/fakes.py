"""In-memory stand-in for collection-svc's repository, for unit tests of the use cases (no
PostgreSQL, no broker). Records are handed out and stored as copies, as rows are: a change the
use case does not save is not kept."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from collection_svc.domain.policy import CollectionPolicy, MandateView
from collection_svc.domain.states import Status
from collection_svc.service_layer.records import HANDED_OFF, CollectionRecord, SqlCollectionRepository
from koppel_shared.testing.fakes import FakeUnitOfWork

TENANT = uuid.UUID("44444444-4444-4444-8444-444444444444")


@dataclass
class FakeCollections:
    policies: dict[uuid.UUID, CollectionPolicy] = field(default_factory=dict)
    mandates: dict[tuple[uuid.UUID, str], MandateView] = field(default_factory=dict)
    subscriptions: dict[tuple[uuid.UUID, str], SimpleNamespace] = field(default_factory=dict)
    invoices: dict[uuid.UUID, SimpleNamespace] = field(default_factory=dict)
    pay_links: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)  # invoice id -> link id
    collections: dict[uuid.UUID, CollectionRecord] = field(default_factory=dict)

    # what deciding reads
    async def policy(self, tenant_id: uuid.UUID) -> tuple[CollectionPolicy, int]:
        found = self.policies.get(tenant_id)
        return (found, 1) if found else (CollectionPolicy(), 0)

    async def customer_mandate(self, tenant_id: uuid.UUID, customer_number: str) -> MandateView | None:
        return self.mandates.get((tenant_id, customer_number))

    async def subscription(self, tenant_id: uuid.UUID, reference: str) -> Any:
        return self.subscriptions.get((tenant_id, reference))

    # invoices
    async def invoice(self, invoice_id: uuid.UUID) -> Any:
        return self.invoices[invoice_id]

    async def invoice_with_key(self, tenant_id: uuid.UUID, key: str) -> Any:
        found = [i for i in self.invoices.values() if i.tenant_id == tenant_id and i.idempotency_key == key]
        return found[0] if found else None

    async def open_invoice_numbered(self, tenant_id: uuid.UUID, number: str) -> Any:
        found = [
            i
            for i in self.invoices.values()
            if i.tenant_id == tenant_id and i.invoice_number == number and i.withdrawn_at is None
        ]
        return found[0] if found else None

    async def add_invoice(self, values: dict[str, Any]) -> bool:
        tenant, key = values["tenant_id"], values.get("idempotency_key")
        if (key and await self.invoice_with_key(tenant, key)) or await self.open_invoice_numbered(
            tenant, values["invoice_number"]
        ):
            return False  # the unique indexes refuse it
        self.invoices[values["id"]] = SimpleNamespace(**values, withdrawn_at=None)
        return True

    async def add_pay_link(
        self, link_id: uuid.UUID, tenant_id: uuid.UUID, invoice_id: uuid.UUID, now: datetime
    ) -> bool:
        if invoice_id in self.pay_links:
            return False
        self.pay_links[invoice_id] = link_id
        return True

    # collections
    async def add_collections(self, recs: Sequence[CollectionRecord]) -> None:
        for rec in recs:
            assert rec.id not in self.collections, "a collection added twice"
            self.collections[rec.id] = replace(rec)

    async def save_collections(self, recs: Sequence[CollectionRecord]) -> None:
        for rec in recs:
            assert rec.id in self.collections, "a collection saved before it was added"
            self.collections[rec.id] = replace(rec)

    async def claim_due(self, today: date, limit: int) -> list[CollectionRecord]:
        due = [
            r
            for r in self.collections.values()
            if r.status == Status.SCHEDULED and r.collect_on is not None and r.collect_on <= today
        ]
        return [replace(r) for r in sorted(due, key=lambda r: (r.collect_on, r.id))[:limit]]

    async def mark_submitted(self, recs: Sequence[CollectionRecord], now: datetime, today: date) -> None:
        for rec in recs:
            stored = self.collections[rec.id]
            self.collections[rec.id] = replace(
                stored,
                status=str(Status.SUBMITTED),
                submitted_at=now,
                reason=HANDED_OFF,
                reason_code="sent",
                requested_date=max(stored.requested_date or today, today),
                version=stored.version + 1,
                updated_at=now,
            )

    async def lock_by_ids(self, ids: Sequence[uuid.UUID]) -> list[CollectionRecord]:
        return [replace(self.collections[i]) for i in sorted(ids) if i in self.collections]

    async def lock_direct_debits(self, transactions: Sequence[tuple[uuid.UUID, str]]) -> list[CollectionRecord]:
        wanted = set(transactions)
        return [
            replace(r)
            for r in self.collections.values()
            if r.method == "direct_debit" and (r.tenant_id, r.twikey_transaction_id) in wanted
        ]

    async def lock_open_siblings(self, rec: CollectionRecord) -> list[CollectionRecord]:
        return [
            replace(r)
            for r in self.collections.values()
            if r.invoice_id == rec.invoice_id and r.id != rec.id and r.status in (Status.SCHEDULED, Status.SKIPPED)
        ]

    def of_invoice(self, invoice_id: uuid.UUID) -> list[CollectionRecord]:
        return sorted((r for r in self.collections.values() if r.invoice_id == invoice_id), key=lambda r: r.attempt)


def fake_uow() -> tuple[FakeUnitOfWork, FakeCollections]:
    repo = FakeCollections()
    return FakeUnitOfWork({SqlCollectionRepository: repo}), repo
