"""What notify-svc's use cases are given beside a unit of work, typed: built once per process by
``bootstrap.open_dependencies``, reached in routes through ``Deps`` and in loops by closure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from koppel_shared.deps import get_dependencies, get_runtime
from koppel_shared.service import Runtime
from notify_svc.adapters.network import Resolver
from notify_svc.settings import Settings


@dataclass(frozen=True)
class Dependencies:
    # The DNS look-up behind every URL check. None: the system's in the API, threads of its own in
    # the dispatcher; a test gives a fake one to prove a name resolving to a private address is refused.
    resolver: Resolver | None = None


Deps = Annotated[Dependencies, Depends(get_dependencies)]
RuntimeDep = Annotated[Runtime[Settings], Depends(get_runtime)]
