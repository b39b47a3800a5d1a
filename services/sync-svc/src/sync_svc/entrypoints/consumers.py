"""What sync-svc consumes from the broker."""

from __future__ import annotations

from collections.abc import Sequence

from koppel_shared.messaging.inbox import ConsumerSpec
from koppel_shared.messaging.ping import ping_consumer
from koppel_shared.service import Runtime


def consumers(runtime: Runtime) -> Sequence[ConsumerSpec]:
    return [ping_consumer()]
