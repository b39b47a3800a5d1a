"""Customers: the bank account and collect mandate of a signed mandate put on the debtor in
Twinfield (``<dimensions>``, up to 25 a request). A repeated update is harmless (banks merge on
IBAN), so a failed request is simply tried again later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bookkeeping_svc.adapters.orm import customer_updates
from bookkeeping_svc.adapters.twinfield import answers, documents
from bookkeeping_svc.adapters.twinfield.errors import ConsentLost, TwinfieldError
from bookkeeping_svc.domain.booking import MAX_BACKOFF_DOUBLINGS
from bookkeeping_svc.service_layer.booking.work import Work
from bookkeeping_svc.service_layer.gateway import Access, NotConnected


async def update_customers(work: Work, access: Access) -> tuple[Access, bool]:
    async with work.runtime.uow() as uow:
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
                    .limit(work.settings.batch_size)
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
        access, root = await work.gw.call(access, documents.customer_bank_update(access.office, updates))
        results = documents.parse_dimensions(root)
    except (ConsentLost, NotConnected):
        raise
    except TwinfieldError as exc:
        await _later(work, rows, exc)
        return access, True
    async with work.runtime.uow() as uow:
        for r, (ok, msgs) in zip(rows, results, strict=False):
            values: dict[str, Any] = {"attempts": r.attempts + 1, "updated_at": sa.func.now()}
            if ok:
                values.update(status="done", error_message=None, hint=None)
            else:
                refusal = answers.customer_refusal(msgs)
                values.update(status="error", error_message=refusal.message, hint=refusal.hint)
            await uow.session.execute(sa.update(customer_updates).where(customer_updates.c.id == r.id).values(**values))
        await uow.commit()
    return access, True


async def _later(work: Work, rows: list[Any], exc: Exception) -> None:
    async with work.runtime.uow() as uow:
        for r in rows:
            delay = work.settings.transient_backoff_seconds * (2 ** min(r.attempts + 1, MAX_BACKOFF_DOUBLINGS))
            await uow.session.execute(
                sa.update(customer_updates)
                .where(customer_updates.c.id == r.id)
                .values(
                    attempts=r.attempts + 1,
                    next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay),
                    error_message=str(exc)[:2000],
                    updated_at=sa.func.now(),
                )
            )
        await uow.commit()
