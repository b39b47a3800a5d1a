"""Twikey's answers about transactions (through sync-svc): created, refused, and every entry of
the transaction feed — staged by the consumer, applied in bulk by the applier loop.

- ``twikey.transaction.created`` → the collection is at Twikey: its transaction id is stored and
  ``collection.submitted`` is published (the scheduler's hand-off to sync-svc publishes nothing, so
  the bulk commands are never queued behind 100,000 announcements);
- ``twikey.transaction.refused`` → failed with Twikey's code;
- ``twikey.transaction.changed``: PAID → paid; ERROR/UNPAID → failed with the R-code (the retry
  policy may schedule a new attempt); ERROR/UNPAID after PAID → reversed (the invoice reopens).

Only direct-debit collections are ever matched: Twikey numbers pay links in a sequence of its own,
so a transaction id can equal a pay link's id (which a pay-link collection keeps in
``twikey_transaction_id``); such a message must never touch the pay-link collection.

Idempotent three times over: the inbox drops a redelivered envelope; a feed entry at or before
the last one applied to a collection is ignored (``last_feed_seq``); statuses only move forward.
So a feed reset that replays everything creates no second collection and no second
``collection.paid``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from collection_svc.adapters.orm import TwikeyUpdate
from collection_svc.domain import states
from collection_svc.domain.policy import CollectionPolicy, NoRetry, retry_decision
from collection_svc.domain.states import LIVE, Status
from collection_svc.service_layer import records
from collection_svc.service_layer.engine import DIRECT_DEBIT
from collection_svc.service_layer.records import (
    Clock,
    CollectionRecord,
    CollectionRepository,
    collection_event,
    new_record,
)
from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
from koppel_shared.events.registry import EventData
from koppel_shared.events.twikey import TwikeyTransactionChanged, TwikeyTransactionCreated, TwikeyTransactionRefused
from koppel_shared.logging import get_logger

log = get_logger(__name__)

APPLY_BATCH = 1000


async def stage(envelope: Envelope, data: EventData, uow: UnitOfWork) -> None:
    """Consumer handler: keep the message for the applier (same transaction as the inbox row)."""
    if envelope.tenant_id is None:
        raise ValueError(f"{envelope.type} without tenant_id")
    # No round trip here: the commit's flush writes every row of the consumer batch in one INSERT.
    uow.session.add(
        TwikeyUpdate(envelope.tenant_id, envelope.id, envelope.type, envelope.correlation_id, envelope.data)
    )


_COLUMNS = "SELECT seq, tenant_id, event_id, event_type, correlation_id, data FROM twikey_updates"
_CLAIM = sa.text(f"{_COLUMNS} WHERE failed_at IS NULL ORDER BY seq LIMIT :n FOR UPDATE SKIP LOCKED")
_CLAIM_ONE = sa.text(f"{_COLUMNS} WHERE seq = :seq AND failed_at IS NULL FOR UPDATE SKIP LOCKED")
_PENDING = sa.text("SELECT seq FROM twikey_updates WHERE failed_at IS NULL ORDER BY seq LIMIT :n")
_PARK = sa.text("UPDATE twikey_updates SET failed_at = now(), error = :error WHERE seq = :seq")
_DELETE = sa.text("DELETE FROM twikey_updates WHERE seq = ANY(:seqs)")


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


class Batch:
    """The collections one batch of Twikey messages touches, locked in id order, changed in
    memory, written back at the end with every event of every change."""

    def __init__(self, repo: CollectionRepository, now: datetime) -> None:
        self.repo = repo
        self.now = now
        self.recs: dict[uuid.UUID, CollectionRecord] = {}
        self.by_tx: dict[tuple[uuid.UUID, str], CollectionRecord] = {}
        self.dirty: dict[uuid.UUID, CollectionRecord] = {}
        self.new: list[CollectionRecord] = []
        self.events: list[Envelope] = []
        self._policies: dict[uuid.UUID, CollectionPolicy] = {}

    def _index(self, rec: CollectionRecord) -> None:
        if rec.twikey_transaction_id and rec.method == DIRECT_DEBIT:
            self.by_tx[(rec.tenant_id, rec.twikey_transaction_id)] = rec

    def register(self, loaded: Sequence[CollectionRecord]) -> list[CollectionRecord]:
        found = []
        for new in loaded:
            rec = self.recs.get(new.id) or new  # one record per collection, however often loaded
            self.recs[rec.id] = rec
            self._index(rec)
            found.append(rec)
        return found

    async def preload(self, messages: list[tuple[uuid.UUID, dict[str, Any]]]) -> None:
        ids = {i for _, data in messages if (i := _uuid(data.get("collection_id") or data.get("reference")))}
        if ids:
            self.register(await self.repo.lock_by_ids(sorted(ids)))
        missing = {
            (tenant, data["transaction_id"])
            for tenant, data in messages
            if data.get("transaction_id") and not self.find(tenant, data.get("reference"), None)
        }
        if missing:
            self.register(await self.repo.lock_direct_debits(sorted(missing)))

    def find(self, tenant_id: uuid.UUID, reference: str | None, transaction_id: str | None) -> CollectionRecord | None:
        """The direct-debit collection a transaction message is about: by our reference, else by
        the transaction id."""
        rec = self.recs.get(_uuid(reference)) if reference else None  # type: ignore[arg-type]
        if rec is not None and rec.tenant_id == tenant_id and rec.method == DIRECT_DEBIT:
            return rec
        if transaction_id:
            return self.by_tx.get((tenant_id, transaction_id))
        return None

    async def policy(self, tenant_id: uuid.UUID) -> CollectionPolicy:
        if tenant_id not in self._policies:
            self._policies[tenant_id] = (await self.repo.policy(tenant_id))[0]
        return self._policies[tenant_id]

    def changed(self, rec: CollectionRecord, cause: Envelope) -> None:
        rec.version += 1
        rec.updated_at = self.now
        self._index(rec)
        if all(rec is not n for n in self.new):
            self.dirty[rec.id] = rec
        self.events.append(collection_event(rec, cause))

    def quietly_changed(self, rec: CollectionRecord) -> None:
        """A change no one needs to hear about (the feed position, a transaction id)."""
        if all(rec is not n for n in self.new):
            self.dirty[rec.id] = rec

    def added(self, rec: CollectionRecord, cause: Envelope) -> None:
        self.recs[rec.id] = rec
        self.new.append(rec)
        self.events.append(collection_event(rec, cause))

    async def flush(self, uow: UnitOfWork) -> None:
        if self.dirty:
            # Rows leaving the live states first: the one-live-debit index checks row by row.
            await self.repo.save_collections(sorted(self.dirty.values(), key=lambda r: r.status in LIVE))
        if self.new:
            await self.repo.add_collections(self.new)
        if self.events:
            await uow.emit(*self.events)


async def apply_twikey_updates(
    session_factory: async_sessionmaker[AsyncSession], clock: Clock, limit: int = APPLY_BATCH
) -> int:
    """Apply up to ``limit`` staged messages in one transaction; returns how many were handled.

    If the batch fails (a deadlock between replicas, a bug on one message), each message is tried
    on its own; one that still fails is parked with its error (``failed_at``) instead of blocking
    the rest — visible to operators (``parked.py``: the API, `koppel dlq parked`, the console, the
    ``koppel_parked_messages`` gauge), never silently dropped."""
    try:
        return await _apply(session_factory, clock, _CLAIM, {"n": limit})
    except Exception as exc:
        log.warning("applier.batch_failed", error=repr(exc)[:500])
    async with session_factory() as session:
        seqs = [r[0] for r in (await session.execute(_PENDING, {"n": limit})).all()]
    for seq in seqs:
        try:
            await _apply(session_factory, clock, _CLAIM_ONE, {"seq": seq})
        except Exception as exc:
            log.error("applier.message_parked", seq=seq, error=repr(exc)[:500])
            async with UnitOfWork(session_factory) as uow:
                await uow.session.execute(_PARK, {"seq": seq, "error": repr(exc)[:2000]})
                await uow.commit()
    return len(seqs)


async def _apply(
    session_factory: async_sessionmaker[AsyncSession], clock: Clock, claim: Any, params: dict[str, Any]
) -> int:
    async with UnitOfWork(session_factory) as uow:
        rows = (await uow.session.execute(claim, params)).all()
        if not rows:
            return 0
        await apply_messages(uow, rows, clock())
        await uow.session.execute(_DELETE, {"seqs": [r.seq for r in rows]})
        await uow.commit()
    return len(rows)


async def apply_messages(uow: UnitOfWork, messages: Sequence[Any], now: datetime) -> None:
    """Apply staged Twikey messages (each with ``tenant_id``, ``event_id``, ``event_type``,
    ``correlation_id`` and ``data``) to their collections in this unit of work; the caller commits."""
    batch = Batch(records.of(uow), now)
    await batch.preload([(r.tenant_id, r.data) for r in messages])
    for row in messages:
        cause = Envelope(
            id=row.event_id,
            type=row.event_type,
            tenant_id=row.tenant_id,
            correlation_id=row.correlation_id,
            data=row.data,
        )
        if row.event_type == "twikey.transaction.changed":
            await _changed(batch, cause, TwikeyTransactionChanged.model_validate(row.data))
        elif row.event_type == "twikey.transaction.created":
            _created(batch, cause, TwikeyTransactionCreated.model_validate(row.data))
        elif row.event_type == "twikey.transaction.refused":
            _refused(batch, cause, TwikeyTransactionRefused.model_validate(row.data))
    await batch.flush(uow)


def _created(batch: Batch, cause: Envelope, data: TwikeyTransactionCreated) -> None:
    assert cause.tenant_id is not None
    rec = batch.find(cause.tenant_id, data.collection_id, None)
    if rec is None:
        log.warning("transaction.created_unknown_collection", collection_id=data.collection_id)
        return
    if rec.status == Status.SUBMITTED and rec.reason_code != "accepted":
        rec.twikey_transaction_id = data.transaction_id
        rec.reason_code = "accepted"
        rec.reason = f"at Twikey as transaction {data.transaction_id}"
        batch.changed(rec, cause)
    elif rec.twikey_transaction_id is None:  # the feed overtook the command's answer
        rec.twikey_transaction_id = data.transaction_id
        batch.quietly_changed(rec)


def _refused(batch: Batch, cause: Envelope, data: TwikeyTransactionRefused) -> None:
    assert cause.tenant_id is not None
    rec = batch.find(cause.tenant_id, data.collection_id, None)
    if rec is None:
        log.warning("transaction.refused_unknown_collection", collection_id=data.collection_id)
        return
    transition = states.on_refused(Status(rec.status), data.code, data.message)
    if transition is None:
        return
    rec.status = transition.to
    rec.reason_code = data.code
    rec.reason = transition.reason
    batch.changed(rec, cause)


async def _changed(batch: Batch, cause: Envelope, data: TwikeyTransactionChanged) -> None:
    assert cause.tenant_id is not None
    rec = batch.find(cause.tenant_id, data.reference, data.transaction_id)
    if rec is None:
        log.info("transaction.not_ours", transaction_id=data.transaction_id, reference=data.reference)
        return
    if states.is_stale(data.feed_seq, rec.last_feed_seq):
        log.info("transaction.replay_ignored", collection_id=str(rec.id), feed_seq=data.feed_seq)
        return
    transition = states.on_transaction_state(
        Status(rec.status),
        data.state,
        reversal=data.reversal,
        bank_error=data.bank_error,
        bank_message=data.bank_message,
    )
    rec.last_feed_seq = data.feed_seq
    rec.twikey_transaction_id = rec.twikey_transaction_id or data.transaction_id
    if transition is None:
        batch.quietly_changed(rec)
        return
    previous = rec.status
    rec.status = transition.to
    rec.reason = transition.reason
    if transition.to == Status.PAID:
        rec.paid_at = data.booked_at or batch.now
        rec.reason_code = "paid"
        if previous == Status.FAILED:
            # Twikey's own dunning got it paid after all: a retry we planned must not run.
            for other in batch.register(await batch.repo.lock_open_siblings(rec)):
                other.status = Status.WITHDRAWN
                other.reason_code = "superseded"
                other.reason = "an earlier attempt was paid after all"
                batch.changed(other, cause)
        batch.changed(rec, cause)
        return
    rec.r_code = transition.r_code
    rec.reason_code = "reversed" if transition.to == Status.REVERSED else "bank_error"
    retry = None
    if rec.method == DIRECT_DEBIT:
        decision = retry_decision(transition.r_code, rec.attempt, await batch.policy(rec.tenant_id), batch.now.date())
        if isinstance(decision, NoRetry):
            rec.reason = f"{rec.reason}; {decision.reason}"
        else:
            retry = decision
            rec.reason = f"{rec.reason}; {decision.reason} on {decision.collect_on.isoformat()}"
    batch.changed(rec, cause)
    if retry is not None:
        again = new_record(
            rec,
            rec.attempt + 1,
            DIRECT_DEBIT,
            Status.SCHEDULED,
            batch.now,
            tenant_id=rec.tenant_id,
            invoice_id=rec.invoice_id,
            mandate_number=rec.mandate_number,
            collect_on=retry.collect_on,
            requested_date=retry.collect_on,
            reason_code="retry",
            reason=retry.reason,
        )
        batch.added(again, cause)
