"""What collection-svc's use cases are given beside a unit of work, typed: built once per process
by ``bootstrap.make_definition``, reached in routes through ``Deps`` and in consumers and loops
by closure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from collection_svc.service_layer.records import Clock, utc_now
from collection_svc.settings import Settings
from koppel_shared.deps import get_dependencies, get_runtime
from koppel_shared.service import Runtime


@dataclass(frozen=True)
class Dependencies:
    # what the API, the consumers and the scheduler call "now" (tests and benchmarks drive it)
    clock: Clock = utc_now


Deps = Annotated[Dependencies, Depends(get_dependencies)]
RuntimeDep = Annotated[Runtime[Settings], Depends(get_runtime)]
