"""What bookkeeping-svc's use cases are given beside a unit of work, typed: built once per
process by ``bootstrap.open_dependencies``, reached in routes through ``Deps`` and in consumers and
loops by closure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from bookkeeping_svc.adapters.sync_client import SyncClient
from bookkeeping_svc.service_layer.chart import ChartCache
from bookkeeping_svc.service_layer.gateway import Gateway
from bookkeeping_svc.settings import Settings
from koppel_shared.deps import get_dependencies, get_runtime
from koppel_shared.service import Runtime


@dataclass(frozen=True)
class Dependencies:
    gateway: Gateway  # Twinfield: OAuth, the access cache, the credit budget
    sync: SyncClient  # sync-svc's paid-items replay, read by the reconciler
    chart: ChartCache  # the settings form's offices and accounts, kept chart_cache_seconds


Deps = Annotated[Dependencies, Depends(get_dependencies)]
RuntimeDep = Annotated[Runtime[Settings], Depends(get_runtime)]
