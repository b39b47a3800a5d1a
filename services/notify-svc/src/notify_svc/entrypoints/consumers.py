"""What notify-svc consumes from the broker: every public event, into the tenant's event log
and its webhook deliveries.

Bindings are the public types the event registry knows (``mandate.*``, ``collection.*``,
``booking.*``), listed one by one rather than bound by wildcard: the shared consumer dead-letters
a type the registry does not know, so a wildcard would turn a new producer's first event into a
dead letter here. A type added to ``koppel_shared.events`` is consumed by the next deploy of
notify-svc without a change in this service; the handler stores the envelope's raw ``data`` (not
the decoded model), so fields notify-svc does not know reach the ERP unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope, registered_types
from koppel_shared.messaging.inbox import ConsumerSpec, Handler
from koppel_shared.messaging.ping import ping_consumer
from koppel_shared.service import Runtime
from notify_svc.dependencies import Dependencies
from notify_svc.domain.subscriptions import is_public_type
from notify_svc.service_layer.ingest import record_event
from notify_svc.settings import Settings


async def handle_public_event(envelope: Envelope, data: Any, uow: UnitOfWork) -> None:
    await record_event(uow, envelope)


def public_types() -> list[str]:
    return sorted(t for t in registered_types() if is_public_type(t))


def consumers(runtime: Runtime[Settings], deps: Dependencies) -> Sequence[ConsumerSpec]:
    types = public_types()
    handlers: dict[str, Handler] = dict.fromkeys(types, handle_public_event)
    return [ping_consumer(), ConsumerSpec(purpose="public-events", bindings=tuple(types), handlers=handlers)]
