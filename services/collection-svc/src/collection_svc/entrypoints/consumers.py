"""What collection-svc consumes from the broker: mandate-svc's mandate.* (the projection of each
customer's mandate) and sync-svc's answers and feed messages about transactions and pay links."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from collection_svc.dependencies import Dependencies
from collection_svc.service_layer import reactions, transactions
from collection_svc.service_layer.records import Clock
from collection_svc.settings import Settings
from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
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


def _bind(
    fn: Callable[[Envelope, Any, UnitOfWork, Clock], Awaitable[None]], clock: Clock
) -> Callable[[Envelope, Any, UnitOfWork], Awaitable[None]]:
    async def handler(envelope: Envelope, data: Any, uow: UnitOfWork) -> None:
        await fn(envelope, data, uow, clock)

    return handler


def consumers(runtime: Runtime[Settings], deps: Dependencies) -> Sequence[ConsumerSpec]:
    clock = deps.clock
    mandate = _bind(reactions.on_mandate, clock)
    return [
        ping_consumer(),
        ConsumerSpec(
            purpose="mandates",
            bindings=("mandate.*",),
            handlers=dict.fromkeys(MANDATE_EVENTS, mandate),
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
                "twikey.paylink.created": _bind(reactions.on_paylink_created, clock),
                "twikey.paylink.changed": _bind(reactions.on_paylink_changed, clock),
            },
        ),
    ]
