"""Events that belong to Koppel itself rather than to a business flow."""

from __future__ import annotations

from datetime import datetime

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


@event_type("token.revoked", version=1)
class TokenRevoked(EventData):
    """A token is revoked: every service refuses it from now on. ``envelope.tenant_id`` is the
    tenant the token names (None for an admin or service token)."""

    token_id: str
    # When the token would have expired anyway (None when unknown): its record may go after that.
    expires_at: datetime | None = None
