"""FastAPI dependency aliases for service routes, kept in one place (``RuntimeDep``, ``UowDep``,
``Principal``, ``Operator``).

A service types its own two from the functions here, in its ``dependencies.py``:
``Annotated[Runtime[Settings], Depends(get_runtime)]`` (``runtime.settings`` is the service's
settings) and ``Annotated[Dependencies, Depends(get_dependencies)]`` (its dependencies object)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request

from koppel_shared.auth import TenantPrincipal
from koppel_shared.db import UnitOfWork
from koppel_shared.service import Runtime
from koppel_shared.settings import KoppelSettings
from koppel_shared.web.auth import Principal, require_scope


async def get_runtime(request: Request) -> Runtime[Any]:
    # async: a plain def would be run in the thread pool on every request
    runtime: Runtime[Any] = request.app.state.runtime
    return runtime


async def get_dependencies(request: Request) -> Any:
    """The service's dependencies object, built once by its ``ServiceDefinition.dependencies``;
    typed by the service's own ``Annotated[Dependencies, Depends(get_dependencies)]``."""
    return request.app.state.dependencies


RuntimeDep = Annotated[Runtime[KoppelSettings], Depends(get_runtime)]


async def get_uow(runtime: RuntimeDep) -> AsyncIterator[UnitOfWork]:
    """A unit of work per request; it rolls back unless the route commits."""
    async with runtime.uow() as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(get_uow)]
Operator = Annotated[TenantPrincipal, Depends(require_scope("operator"))]
Internal = Annotated[TenantPrincipal, Depends(require_scope("internal"))]

__all__ = ["Internal", "Operator", "Principal", "RuntimeDep", "UowDep", "get_dependencies", "get_runtime"]
