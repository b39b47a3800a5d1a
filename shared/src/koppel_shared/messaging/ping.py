"""The system consumer every service has. ``system.ping``: its inbox row is the proof that the
service's outbox → broker → inbox path works (used by tests, the local run's smoke check and
operators). ``tenant.registered``: the service's own record of which tenants exist.
``token.revoked``: its record of the tokens it must refuse."""

from __future__ import annotations

from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
from koppel_shared.events.system import Ping
from koppel_shared.logging import get_logger
from koppel_shared.messaging.inbox import ConsumerSpec
from koppel_shared.revocations import on_token_revoked
from koppel_shared.tenants import on_tenant_registered

log = get_logger(__name__)


async def handle_ping(envelope: Envelope, data: Ping, uow: UnitOfWork) -> None:
    log.info("system.ping_received", sender=data.sender, note=data.note)


def ping_consumer() -> ConsumerSpec:
    return ConsumerSpec(
        purpose="system",
        bindings=("system.ping", "tenant.registered", "token.revoked"),
        handlers={
            "system.ping": handle_ping,
            "tenant.registered": on_tenant_registered,
            "token.revoked": on_token_revoked,
        },
    )
