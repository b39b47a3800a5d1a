"""Events that belong to Koppel itself rather than to a business flow."""

from __future__ import annotations

from koppel_shared.events.registry import EventData, event_type


@event_type("system.ping", version=1)
class Ping(EventData):
    """A harmless event each service consumes: proves outbox → broker → inbox end to end."""

    sender: str
    note: str = ""


@event_type("tenant.registered", version=1)
class TenantRegistered(EventData):
    """A tenant exists from now on (``envelope.tenant_id``); every service records it and honours
    tokens for it only from then on."""

    name: str
