"""Koppel's record of mandates, for reconciliation: every mandate number mandate-svc published
(any ``mandate.*`` event that carries one), with its latest status.

Reconciliation compares it with Twikey's own mandates: a mandate signed at Twikey whose number
is not here was never created (or adopted) by Koppel. The projection only grows; a mandate that
was once Koppel's stays Koppel's, whatever its state. A stale event (lower version) does not
overwrite a newer status.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from bookkeeping_svc.adapters.orm import koppel_mandates
from bookkeeping_svc.service_layer import intake
from koppel_shared.db import UnitOfWork
from koppel_shared.events.envelope import Envelope
from koppel_shared.events.mandate import Mandate, MandateSigned
from koppel_shared.messaging.inbox import Handler

EVENTS = (
    "mandate.prepared",
    "mandate.signed",
    "mandate.updated",
    "mandate.suspended",
    "mandate.resumed",
    "mandate.cancelled",
    "mandate.rejected",
    "mandate.expired",
)


async def on_mandate_event(envelope: Envelope, data: Mandate, uow: UnitOfWork) -> None:
    if envelope.tenant_id is None:
        raise ValueError(f"{envelope.type} {envelope.id} has no tenant_id")  # → dead letters
    if not data.mandate_number:
        return  # not at Twikey yet: nothing to reconcile against
    stmt = insert(koppel_mandates).values(
        tenant_id=envelope.tenant_id,
        mandate_number=data.mandate_number,
        mandate_id=data.mandate_id,
        status=data.status,
        version=data.version,
    )
    await uow.session.execute(
        stmt.on_conflict_do_update(
            index_elements=[koppel_mandates.c.tenant_id, koppel_mandates.c.mandate_number],
            set_={
                "mandate_id": stmt.excluded.mandate_id,
                "status": stmt.excluded.status,
                "version": stmt.excluded.version,
                "updated_at": sa.func.now(),
            },
            where=koppel_mandates.c.version <= stmt.excluded.version,
        )
    )


async def on_mandate_signed(envelope: Envelope, data: MandateSigned, uow: UnitOfWork) -> None:
    """The bank account for the Twinfield customer, and the number for reconciliation."""
    await intake.on_mandate_signed(envelope, data, uow)
    await on_mandate_event(envelope, data, uow)


def handlers() -> dict[str, Handler]:
    return {name: on_mandate_signed if name == "mandate.signed" else on_mandate_event for name in EVENTS}
