"""The ``system.ping`` consumer every service has: its inbox row is the proof that the service's
outbox → broker → inbox path works (used by tests, the local run's smoke check and operators)."""

from __future__ import annotations

from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
from koppel_shared.events.system import Ping
from koppel_shared.logging import get_logger
from koppel_shared.messaging.inbox import ConsumerSpec

log = get_logger(__name__)


async def handle_ping(envelope: Envelope, data: Ping, uow: UnitOfWork) -> None:
    log.info("system.ping_received", sender=data.sender, note=data.note)


def ping_consumer() -> ConsumerSpec:
    return ConsumerSpec(purpose="system", bindings=("system.ping",), handlers={"system.ping": handle_ping})
