"""What collection-svc consumes from the broker: mandate-svc's mandate.* (the projection of each
customer's mandate) and sync-svc's answers and feed messages about transactions and pay links."""

from __future__ import annotations

from collections.abc import Sequence

from collection_svc.dependencies import Dependencies
from collection_svc.service_layer import reactions, transactions
from collection_svc.service_layer.records import Clock
from collection_svc.settings import Settings
from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
from koppel_shared.events.mandate import Mandate
from koppel_shared.events.twikey import TwikeyPaylinkChanged, TwikeyPaylinkCreated
from koppel_shared.messaging.inbox import ConsumerSpec
from koppel_shared.messaging.ping import ping_consumer
from koppel_shared.service import Runtime

MANDATE_EVENTS = (
    "mandate.prepared",
    "mandate.signed",
    "mandate.updated",
    "mandate.suspended",
    "mandate.resumed",
    "mandate.cancelled",
    "mandate.rejected",
    "mandate.expired",
)


def consumers(runtime: Runtime[Settings], deps: Dependencies) -> Sequence[ConsumerSpec]:
    # Handlers that need more than (envelope, data, uow) close over it here: the clock.
    clock: Clock = deps.clock

    async def on_mandate(envelope: Envelope, data: Mandate, uow: UnitOfWork) -> None:
        await reactions.on_mandate(envelope, data, uow, clock)

    async def on_paylink_created(envelope: Envelope, data: TwikeyPaylinkCreated, uow: UnitOfWork) -> None:
        await reactions.on_paylink_created(envelope, data, uow, clock)

    async def on_paylink_changed(envelope: Envelope, data: TwikeyPaylinkChanged, uow: UnitOfWork) -> None:
        await reactions.on_paylink_changed(envelope, data, uow, clock)

    return [
        ping_consumer(),
        ConsumerSpec(
            purpose="mandates",
            bindings=("mandate.*",),
            handlers=dict.fromkeys(MANDATE_EVENTS, on_mandate),
        ),
        ConsumerSpec(
            purpose="twikey",
            bindings=(
                "twikey.transaction.created",
                "twikey.transaction.refused",
                "twikey.transaction.changed",
                "twikey.paylink.created",
                "twikey.paylink.changed",
            ),
            handlers={
                # staged here, applied in bulk by the applier loop (entrypoints.scheduler)
                "twikey.transaction.created": transactions.stage,
                "twikey.transaction.refused": transactions.stage,
                "twikey.transaction.changed": transactions.stage,
                "twikey.paylink.created": on_paylink_created,
                "twikey.paylink.changed": on_paylink_changed,
            },
        ),
    ]
