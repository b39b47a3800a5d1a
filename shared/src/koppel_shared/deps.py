"""FastAPI dependency aliases for service routes, kept in one place (``RuntimeDep``, ``UowDep``,
``Principal``, ``Operator``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from koppel_shared.auth import TenantPrincipal
from koppel_shared.db import UnitOfWork
from koppel_shared.service import Runtime
from koppel_shared.web.auth import Principal, require_scope


async def get_runtime(request: Request) -> Runtime:
    # async: a plain def would be run in the thread pool on every request
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_uow(runtime: RuntimeDep) -> AsyncIterator[UnitOfWork]:
    """A unit of work per request; it rolls back unless the route commits."""
    async with runtime.uow() as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(get_uow)]
Operator = Annotated[TenantPrincipal, Depends(require_scope("operator"))]
Internal = Annotated[TenantPrincipal, Depends(require_scope("internal"))]

__all__ = ["Internal", "Operator", "Principal", "RuntimeDep", "UowDep"]
