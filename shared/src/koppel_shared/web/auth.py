"""FastAPI dependencies for tenant authentication: ``Authorization: Bearer <tenant token>``.

Routes take ``Principal`` (any valid token) or ``require_scope("operator")``; data access always
filters by ``principal.tenant_id``. A service token (koppel_shared.auth) acts for whichever tenant
its call names, so it is honoured only where a route asks for scope ``internal``. An admin token
(no tenant) is honoured only where a route takes ``AdminPrincipal``. A revoked token
(koppel_shared.revocations) is refused everywhere with 401 ``token_revoked``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import structlog
from fastapi import Depends, Request

from koppel_shared.auth import TENANT_HEADER, TenantPrincipal, TokenError, verify_token
from koppel_shared.revocations import RevocationList
from koppel_shared.tenants import TenantDirectory
from koppel_shared.web.errors import Problem


async def token_principal(request: Request) -> TenantPrincipal:
    """The token's principal, whether or not its tenant is registered: only for registering it."""
    return await _verified(request, service_tokens=False)


async def registering_principal(request: Request) -> TenantPrincipal:
    """An admin token, or a tenant token whether or not its tenant is registered: for creating or
    registering a tenant (the route tells the two apart by ``principal.admin``)."""
    return await _verified(request, service_tokens=False, admin=True)


async def admin_principal(request: Request) -> TenantPrincipal:
    """An admin token's principal (installation routes: creating a tenant)."""
    principal = await _verified(request, service_tokens=False, admin=True)
    if not principal.admin:
        raise Problem(403, "insufficient_scope", "this call needs an admin token (`koppel token admin`)")
    return principal


async def _verified(request: Request, service_tokens: bool, admin: bool = False) -> TenantPrincipal:
    # async so that the tenant bound to the log context is seen by the route as well
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "unauthorized", "a tenant token is required: Authorization: Bearer <token>")
    settings = request.app.state.settings
    acting_for = request.headers.get(TENANT_HEADER)
    try:
        principal = verify_token(settings.public_keys, token.strip(), settings.jwt_issuer, acting_for)
    except TokenError as exc:
        raise Problem(401, "invalid_token", f"the tenant token is not valid: {exc}") from exc
    revocations: RevocationList | None = getattr(request.app.state, "revocations", None)
    if revocations is not None and await revocations.is_revoked(principal.token_tenant, principal.token_id):
        raise Problem(401, "token_revoked", f"this token ({principal.token_id}) was revoked")
    if principal.service is not None and not service_tokens:
        raise Problem(403, "insufficient_scope", "a service token is accepted by /internal APIs only")
    if principal.admin and not admin:
        raise Problem(
            403, "insufficient_scope", "an admin token creates tenants only; use an operator token of the tenant"
        )
    if principal.admin:
        return principal
    request.state.tenant_id = principal.tenant_id
    structlog.contextvars.bind_contextvars(tenant_id=str(principal.tenant_id))
    return principal


async def current_principal(request: Request) -> TenantPrincipal:
    return await _registered(request, await token_principal(request))


async def internal_principal(request: Request) -> TenantPrincipal:
    """Like ``current_principal``, and a service token is honoured as well."""
    return await _registered(request, await _verified(request, service_tokens=True))


async def _registered(request: Request, principal: TenantPrincipal) -> TenantPrincipal:
    directory: TenantDirectory | None = getattr(request.app.state, "tenants", None)
    if directory is None or not request.app.state.settings.known_tenants_only:
        return principal
    if not await directory.is_known(principal.tenant_id):
        raise Problem(
            401,
            "unknown_tenant",
            f"tenant {principal.tenant_id} is not registered (`koppel tenant create` registers a tenant)",
        )
    return principal


Principal = Annotated[TenantPrincipal, Depends(current_principal)]
UnregisteredPrincipal = Annotated[TenantPrincipal, Depends(token_principal)]
InternalPrincipal = Annotated[TenantPrincipal, Depends(internal_principal)]
RegisteringPrincipal = Annotated[TenantPrincipal, Depends(registering_principal)]
AdminPrincipal = Annotated[TenantPrincipal, Depends(admin_principal)]


def require_scope(*scopes: str) -> Callable[[TenantPrincipal], TenantPrincipal]:
    def granted(principal: TenantPrincipal) -> TenantPrincipal:
        if not any(principal.has(s) for s in scopes):
            raise Problem(403, "insufficient_scope", f"this call needs one of the scopes: {', '.join(scopes)}")
        return principal

    def check(principal: Principal) -> TenantPrincipal:
        return granted(principal)

    def check_internal(principal: InternalPrincipal) -> TenantPrincipal:
        return granted(principal)

    return check_internal if "internal" in scopes else check
