"""Tenant registration, ``/v1/tenants``: sync-svc keeps the register of tenants (a tenant's first
need is its Twikey connection, which sync-svc owns) and tells every service with
``tenant.registered``; until a service has heard it, that service answers the tenant's tokens
with 401 ``unknown_tenant``.

Two forms of ``POST /v1/tenants``:

- with an **admin** token (installation-wide, from ``koppel token admin``): a new tenant with a
  new id, and its first operator token (signed by sync-svc, 30 days) in the answer, once;
- with a token of the tenant itself (``operator`` scope, issued by the ``koppel`` command before
  the tenant existed): registers that tenant. This is the one call a token of a not yet
  registered tenant may make: only whoever holds the signing key can issue such a token.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, field_validator

from koppel_shared.deps import Principal, RuntimeDep, UowDep
from koppel_shared.events import new_event
from koppel_shared.events.system import TenantRegistered
from koppel_shared.tenants import known_tenants, remember_tenant
from koppel_shared.web.auth import RegisteringPrincipal
from koppel_shared.web.errors import Problem
from sync_svc.entrypoints.tokens import settings_of
from sync_svc.service_layer import tokens

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


class TenantIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="How operators recognise the tenant")

    model_config = {"json_schema_extra": {"examples": [{"name": "Bakkerij Peeters"}]}}

    @field_validator("name")
    @classmethod
    def _name_has_text(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the name is empty")
        if any(ord(c) < 32 for c in value):
            raise ValueError("the name has control characters")
        return value


class TenantOut(BaseModel):
    tenant_id: str
    name: str
    registered_at: str


class TenantCreated(TenantOut):
    operator_token: str = Field(description="The tenant's first operator token: shown this once, never again")
    operator_token_id: str = Field(description="Its id (jti), as in GET /v1/tokens")


async def _registration(uow: UowDep, tenant_id: Any) -> dict[str, Any] | None:
    row = (await uow.session.execute(sa.select(known_tenants).where(known_tenants.c.tenant_id == tenant_id))).first()
    if row is None:
        return None
    return {"tenant_id": str(row.tenant_id), "name": row.name, "registered_at": row.registered_at.isoformat()}


@router.post(
    "",
    response_model=TenantCreated | TenantOut,
    status_code=201,
    responses={
        200: {"description": "already registered (the first registration is kept)"},
        409: {"description": "`tenant_name_taken` (admin form)"},
    },
)
async def register_tenant(
    body: TenantIn, principal: RegisteringPrincipal, runtime: RuntimeDep, uow: UowDep, response: Response
) -> Any:
    """With an admin token: create a tenant and its first operator token (201, the token shown
    once). With the tenant's own operator token: register that tenant; idempotent, registering
    again answers 200 with the first registration and publishes nothing."""
    if principal.admin:
        settings = settings_of(runtime)
        try:
            tenant_id, issued = await tokens.create_tenant(
                uow, settings.signing_key, settings.jwt_issuer, body.name, settings.tenant_operator_token_days
            )
        except tokens.TenantNameTaken as exc:
            raise Problem(409, "tenant_name_taken", str(exc)) from exc
        await uow.session.flush()
        created = await _registration(uow, tenant_id)
        await uow.commit()
        return {**(created or {}), "operator_token": issued.token, "operator_token_id": issued.item["id"]}
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
