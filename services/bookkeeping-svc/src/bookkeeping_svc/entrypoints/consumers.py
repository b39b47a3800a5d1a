"""What bookkeeping-svc consumes from the broker: paid and reversed collections (to book), signed
mandates (bank account and collect mandate on the Twinfield customer), and every mandate event's
number (Koppel's record of mandates, for reconciliation)."""

from __future__ import annotations

from collections.abc import Sequence

from bookkeeping_svc.dependencies import Dependencies
from bookkeeping_svc.service_layer import intake, mandates
from bookkeeping_svc.settings import Settings
from koppel_shared.messaging.inbox import ConsumerSpec
from koppel_shared.messaging.ping import ping_consumer
from koppel_shared.service import Runtime


def consumers(runtime: Runtime[Settings], deps: Dependencies) -> Sequence[ConsumerSpec]:
    return [
        ping_consumer(),
        ConsumerSpec(
            purpose="collections",
            bindings=("collection.paid", "collection.reversed"),
            handlers={
                "collection.paid": intake.on_collection_paid,
                "collection.reversed": intake.on_collection_reversed,
            },
        ),
        ConsumerSpec(
            purpose="mandates",
            bindings=mandates.EVENTS,
            handlers=mandates.handlers(),
        ),
    ]
