"""What collection-svc does when it hears from mandate-svc (mandate.*) and about pay links from
Twikey through sync-svc (twikey.paylink.*). Transactions are in ``transactions``.

Idempotent on business keys as well as on the envelope id: a mandate event older than the
projection is ignored; a pay-link feed entry at or before the last one applied is ignored; a paid
link stays paid, so a replay pays nothing twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from collection_svc.adapters.orm import collections, invoices, mandates, pay_links
from collection_svc.domain import states
from collection_svc.domain.states import Status
from collection_svc.service_layer.engine import DIRECT_DEBIT, PAYLINK, reevaluate_customer
from collection_svc.service_layer.records import Clock, insert_record, load_records, new_record, save_record
from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
from koppel_shared.events.collection import CollectionPaylinkCreated
from koppel_shared.events.mandate import Mandate
from koppel_shared.events.twikey import TwikeyPaylinkChanged, TwikeyPaylinkCreated
from koppel_shared.logging import get_logger

log = get_logger(__name__)

PAYLINK_EVENTS_NS = uuid.UUID("5f1d2c3b-8a47-4e0f-9b6e-2d7c4a9e1b30")


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _tenant(envelope: Envelope) -> uuid.UUID:
    if envelope.tenant_id is None:
        raise ValueError(f"{envelope.type} without tenant_id")
    return envelope.tenant_id


# --------------------------------------------------------------------------- mandates
async def on_mandate(envelope: Envelope, data: Mandate, uow: UnitOfWork, clock: Clock) -> None:
    """Keep the projection (newest version wins), then decide again for the customer's open
    invoices: signed/resumed → scheduled; suspended/cancelled → stopped with the reason."""
    tenant_id = _tenant(envelope)
    now = clock()
    values = {
        "tenant_id": tenant_id,
        "mandate_key": data.mandate_id,
        "customer_number": data.customer_number,
        "mandate_number": data.mandate_number,
        "status": data.status,
        "max_amount_cents": data.max_amount_cents,
        "version": data.version,
        "updated_at": now,
    }
    stmt = insert(mandates).values(values)
    upsert = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "mandate_key"],
        set_={k: stmt.excluded[k] for k in values if k not in ("tenant_id", "mandate_key")},
        where=mandates.c.version < stmt.excluded.version,
    ).returning(mandates.c.mandate_key)
    if (await uow.session.execute(upsert)).first() is None:
        log.info("mandate.stale_ignored", mandate_id=data.mandate_id, version=data.version)
        return
    if data.mandate_number:
        # mandate-svc now knows the mandate a pay link made: its view replaces ours.
        await uow.session.execute(
            sa.delete(mandates).where(
                mandates.c.tenant_id == tenant_id,
                mandates.c.mandate_number == data.mandate_number,
                mandates.c.mandate_key != data.mandate_id,
                mandates.c.mandate_key.like("paylink:%"),
            )
        )
    changed = await reevaluate_customer(uow, tenant_id, data.customer_number, now, now.date(), envelope)
    log.info("mandate.applied", status=data.status, customer=data.customer_number, invoices_changed=changed)


# --------------------------------------------------------------------------- pay links
async def on_paylink_created(envelope: Envelope, data: TwikeyPaylinkCreated, uow: UnitOfWork, clock: Clock) -> None:
    """Twikey made the link: keep its id and URL and announce it (``collection.paylink_created``),
    once per link, so the ERP can send the URL to its customer without polling."""
    tenant_id = _tenant(envelope)
    link_id = _uuid(data.reference)
    if link_id is None:
        return
    where = (pay_links.c.tenant_id == tenant_id, pay_links.c.id == link_id)
    link = (await uow.session.execute(sa.select(pay_links).where(*where).with_for_update())).first()
    if link is None:
        return
    now = clock()
    await uow.session.execute(
        sa.update(pay_links)
        .where(*where)
        .values(
            paylink_id=data.paylink_id,
            url=data.url,
            state=sa.case((pay_links.c.state == "requested", "created"), else_=pay_links.c.state),
            updated_at=now,
        )
    )
    if link.url or not data.url:
        return
    await uow.emit(await _paylink_announcement(uow, link.invoice_id, data, now, envelope))


async def _paylink_announcement(
    uow: UnitOfWork, invoice_id: uuid.UUID, data: TwikeyPaylinkCreated, now: datetime, cause: Envelope
) -> Envelope:
    invoice = (await uow.session.execute(sa.select(invoices).where(invoices.c.id == invoice_id))).one()
    debits = await load_records(
        uow.session, collections.c.invoice_id == invoice_id, collections.c.method == DIRECT_DEBIT, lock=False
    )
    debit = debits[-1] if debits else None
    announced = CollectionPaylinkCreated(
        invoice_id=str(invoice.id),
        invoice_number=invoice.invoice_number,
        customer_number=invoice.customer_number,
        customer_email=invoice.customer_email,
        customer_name=invoice.customer_name,
        amount_cents=invoice.amount_cents,
        currency=invoice.currency,
        collection_id=str(debit.id) if debit else None,
        reason_code=debit.reason_code if debit else None,
        paylink_id=data.paylink_id,
        url=data.url,
        created_at=now,
    )
    # one id per link: a second answer from sync-svc announces nothing new
    return cause.caused(announced, id=uuid.uuid5(PAYLINK_EVENTS_NS, f"{invoice_id}/{data.reference}"))


async def on_paylink_changed(envelope: Envelope, data: TwikeyPaylinkChanged, uow: UnitOfWork, clock: Clock) -> None:
    """A pay link moved: paid → the invoice is paid (a ``paylink`` collection, ``collection.paid``);
    a mandate signed through it → the customer's later invoices go by direct debit."""
    tenant_id = _tenant(envelope)
    link_id = _uuid(data.reference)
    where = [pay_links.c.tenant_id == tenant_id]
    where.append(pay_links.c.id == link_id if link_id else pay_links.c.paylink_id == data.paylink_id)
    link = (await uow.session.execute(sa.select(pay_links).where(*where).with_for_update())).first()
    if link is None:
        log.info("paylink.not_ours", paylink_id=data.paylink_id)
        return
    if states.is_stale(data.feed_seq, link.last_feed_seq):
        return
    now = clock()
    state = data.state.lower()
    became_paid = state == "paid" and link.state != "paid"
    await uow.session.execute(
        sa.update(pay_links)
        .where(pay_links.c.id == link.id)
        .values(
            state="paid" if link.state == "paid" else state,  # paid is final
            paylink_id=link.paylink_id or data.paylink_id,
            mandate_number=data.mandate_number or link.mandate_number,
            last_feed_seq=data.feed_seq,
            updated_at=now,
        )
    )
    invoice = (await uow.session.execute(sa.select(invoices).where(invoices.c.id == link.invoice_id))).one()
    if became_paid:
        current = await load_records(uow.session, collections.c.invoice_id == invoice.id)
        attempt = max((c.attempt for c in current), default=0) + 1
        for other in current:
            if other.status in (Status.SCHEDULED, Status.SKIPPED):
                other.status = Status.WITHDRAWN
                other.reason_code = "paid_by_paylink"
                other.reason = "paid through the pay link"
                await save_record(uow, other, now, envelope)
        paid = new_record(
            invoice,
            attempt,
            PAYLINK,
            Status.PAID,
            now,
            # The pay link's id (not a transaction's: Twikey numbers them apart). Events carry it as
            # kind "paylink" + twikey_id (records.payment_identity); the transaction applier never
            # matches a pay-link collection.
            twikey_transaction_id=data.paylink_id,
            paid_at=now,
            reason="paid through the Twikey pay link",
            reason_code="paylink",
            last_feed_seq=data.feed_seq,
        )
        await insert_record(uow, paid, envelope)
    if data.mandate_number:
        exists = (
            await uow.session.execute(
                sa.select(mandates.c.mandate_key).where(
                    mandates.c.tenant_id == tenant_id, mandates.c.mandate_number == data.mandate_number
                )
            )
        ).first()
        if exists is None:
            await uow.session.execute(
                insert(mandates)
                .values(
                    tenant_id=tenant_id,
                    mandate_key=f"paylink:{data.mandate_number}",
                    customer_number=invoice.customer_number,
                    mandate_number=data.mandate_number,
                    status="active",
                    max_amount_cents=None,
                    version=0,
                    updated_at=now,
                )
                .on_conflict_do_nothing()
            )
            await reevaluate_customer(uow, tenant_id, invoice.customer_number, now, now.date(), envelope)


__all__ = ["on_mandate", "on_paylink_changed", "on_paylink_created"]
