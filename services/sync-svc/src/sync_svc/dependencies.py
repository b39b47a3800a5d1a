"""sync-svc's dependencies object (``Resources``) and its runtime, typed for routes: built once
per process by ``service_layer.resources.open_resources``, reached in routes through ``Deps`` and in
consumers and loops by closure."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from koppel_shared.deps import get_dependencies, get_runtime
from koppel_shared.service import Runtime
from sync_svc.service_layer.resources import Resources
from sync_svc.settings import Settings

Dependencies = Resources
Deps = Annotated[Resources, Depends(get_dependencies)]
RuntimeDep = Annotated[Runtime[Settings], Depends(get_runtime)]
