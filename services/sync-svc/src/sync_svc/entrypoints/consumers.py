"""What sync-svc consumes from the broker: the commands other services send it."""

from __future__ import annotations

from collections.abc import Sequence

from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
from koppel_shared.events.commands import CollectRequested, MandateActionRequested, PaylinkRequested
from koppel_shared.messaging.inbox import ConsumerSpec
from koppel_shared.messaging.ping import ping_consumer
from koppel_shared.service import Runtime
from sync_svc.service_layer import commands
from sync_svc.service_layer.resources import Resources
from sync_svc.settings import Settings


def consumers(runtime: Runtime[Settings], resources: Resources) -> Sequence[ConsumerSpec]:
    # Handlers that need more than (envelope, data, uow) close over it here: the runtime and the
    # service's resources (Twikey clients, connections). They commit their effects in their own
    # transactions (one per Twikey call, with its result event), so the inbox transaction only
    # records the command as handled; on the consumer's last try (``current_attempt``) they answer
    # "unavailable" instead of raising.
    async def collect(envelope: Envelope, data: CollectRequested, uow: UnitOfWork) -> None:
        await commands.collect(runtime, resources, envelope, data)

    async def mandate_action(envelope: Envelope, data: MandateActionRequested, uow: UnitOfWork) -> None:
        await commands.mandate_action(runtime, resources, envelope, data)

    async def paylink(envelope: Envelope, data: PaylinkRequested, uow: UnitOfWork) -> None:
        await commands.paylink(runtime, resources, envelope, data)

    return [
        ping_consumer(),
        ConsumerSpec(
            purpose="commands",
            bindings=("sync.collect_requested", "sync.mandate_action_requested", "sync.paylink_requested"),
            workers=4,  # each command waits on Twikey
            handlers={
                "sync.collect_requested": collect,
                "sync.mandate_action_requested": mandate_action,
                "sync.paylink_requested": paylink,
            },
        ),
    ]
