"""Tenant registration, ``/v1/tenants``: sync-svc keeps the register of tenants (a tenant's first
need is its Twikey connection, which sync-svc owns) and tells every service with
``tenant.registered``; until a service has heard it, that service answers the tenant's tokens
with 401 ``unknown_tenant``.

Registering is the one call a token of a not yet registered tenant may make, and only with the
``operator`` scope: only whoever holds the signing key can issue such a token.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from koppel_shared.deps import Principal, UowDep
from koppel_shared.events import new_event
from koppel_shared.events.system import TenantRegistered
from koppel_shared.tenants import known_tenants, remember_tenant
from koppel_shared.web.auth import UnregisteredPrincipal
from koppel_shared.web.errors import Problem

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


class TenantIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="How operators recognise the tenant")

    model_config = {"json_schema_extra": {"examples": [{"name": "Bakkerij Peeters"}]}}


class TenantOut(BaseModel):
    tenant_id: str
    name: str
    registered_at: str


async def _registration(uow: UowDep, tenant_id: Any) -> dict[str, Any] | None:
    row = (await uow.session.execute(sa.select(known_tenants).where(known_tenants.c.tenant_id == tenant_id))).first()
    if row is None:
        return None
    return {"tenant_id": str(row.tenant_id), "name": row.name, "registered_at": row.registered_at.isoformat()}


@router.post(
    "",
    response_model=TenantOut,
    status_code=201,
    responses={200: {"description": "already registered (the first registration is kept)"}},
)
async def register_tenant(body: TenantIn, principal: UnregisteredPrincipal, uow: UowDep, response: Response) -> Any:
    """Register the token's own tenant. Idempotent: registering again answers 200 with the first
    registration and publishes nothing."""
    if not principal.has("operator"):
        raise Problem(403, "insufficient_scope", "registering a tenant needs the operator scope")
    if await remember_tenant(uow.session, principal.tenant_id, body.name):
        await uow.emit(new_event(TenantRegistered(name=body.name), tenant_id=principal.tenant_id))
        await uow.session.flush()
    else:
        response.status_code = 200
    registered = await _registration(uow, principal.tenant_id)
    await uow.commit()
    return registered


@router.get("/me", response_model=TenantOut, responses={404: {"description": "`tenant_not_registered`"}})
async def get_own_tenant(principal: Principal, uow: UowDep) -> Any:
    registered = await _registration(uow, principal.tenant_id)
    if registered is None:  # only where tokens of unregistered tenants are let through (tests)
        raise Problem(404, "tenant_not_registered", "this tenant is not registered")
    return registered
