"""What mandate-svc's use cases are given beside a unit of work, typed: built once per process
by ``bootstrap.open_dependencies``, reached in routes through ``Deps`` and in consumers and loops
by closure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from koppel_shared.deps import get_dependencies, get_runtime
from koppel_shared.service import Runtime
from mandate_svc.adapters.sync_client import SyncClient
from mandate_svc.settings import Settings


@dataclass(frozen=True)
class Dependencies:
    sync: SyncClient  # sync-svc's internal invite API


Deps = Annotated[Dependencies, Depends(get_dependencies)]
RuntimeDep = Annotated[Runtime[Settings], Depends(get_runtime)]
