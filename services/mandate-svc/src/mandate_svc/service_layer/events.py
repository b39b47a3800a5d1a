"""Turning domain outcomes into the public ``mandate.*`` events and the ``sync.*`` commands."""

from __future__ import annotations

from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope, EventData, new_event
from koppel_shared.events.commands import MandateActionRequested
from koppel_shared.events.mandate import (
    Mandate as MandateData,
)
from koppel_shared.events.mandate import (
    MandateCancelled,
    MandateExpired,
    MandatePrepared,
    MandateRejected,
    MandateResumed,
    MandateSigned,
    MandateSuspended,
    MandateUpdated,
)
from mandate_svc.adapters import repository as repo
from mandate_svc.domain.model import Mandate, Outcome

EVENT_MODELS: dict[str, type[MandateData]] = {
    "prepared": MandatePrepared,
    "signed": MandateSigned,
    "updated": MandateUpdated,
    "suspended": MandateSuspended,
    "resumed": MandateResumed,
    "cancelled": MandateCancelled,
    "rejected": MandateRejected,
    "expired": MandateExpired,
}


def mandate_data(kind: str, m: Mandate) -> MandateData:
    return EVENT_MODELS[kind](
        mandate_id=m.id,
        mandate_number=m.mandate_number,
        customer_number=m.customer_number,
        status=m.status.value,
        scheme=m.scheme,
        delivery=m.delivery,
        sign_url=m.sign_url,
        name=m.name,
        company_name=m.company_name,
        email=m.email,
        iban=m.iban,
        bic=m.bic,
        max_amount_cents=m.max_amount_cents,
        signature_date=m.signature_date,
        sign_method=m.sign_method,
        reason=m.reason,
        version=m.version,
        updated_at=m.updated_at,
    )


async def emit_outcome(
    uow: UnitOfWork, outcome: Outcome, *, correlation_id: str | None = None, cause: Envelope | None = None
) -> None:
    """Write the outcome's event and command to the outbox, in the caller's transaction."""
    m = outcome.mandate
    items: list[EventData] = []
    if outcome.event is not None:
        items.append(mandate_data(outcome.event, m))
    if outcome.command is not None:
        if m.mandate_number is None:
            raise ValueError("a Twikey command needs the mandate number")
        items.append(
            MandateActionRequested(
                mandate_number=m.mandate_number, action=outcome.command, reason=outcome.command_reason
            )
        )
    for data in items:
        event = (
            cause.caused(data)
            if cause is not None
            else new_event(data, tenant_id=m.tenant_id, correlation_id=correlation_id)
        )
        await uow.emit(event)
        await repo.of(uow).record_history(m.tenant_id, m.id, event)
