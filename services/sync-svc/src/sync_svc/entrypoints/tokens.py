"""``/v1/tokens`` (scope ``operator``): a tenant's tokens made from the browser. sync-svc signs them
with its own key; the token is in the answer to ``POST`` only, never again. ``DELETE`` revokes a
token on every service within seconds (``token.revoked``), also one the ``koppel`` command issued
(by its ``jti``)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, field_validator

from koppel_shared.deps import Operator, RuntimeDep, UowDep
from koppel_shared.revocations import RevocationList
from koppel_shared.web.errors import Problem
from sync_svc.service_layer import tokens
from sync_svc.settings import Settings

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])

TOKEN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class TokenIn(BaseModel):
    label: str = Field(min_length=1, max_length=100, description="What the token is for, for people")
    scopes: list[Literal["erp", "operator"]] = Field(min_length=1, max_length=2)
    ttl_days: int = Field(365, ge=1, le=730, strict=True, description="Valid this many days")

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {"examples": [{"label": "ERP production", "scopes": ["erp"], "ttl_days": 365}]},
    }

    @field_validator("label")
    @classmethod
    def _label_has_text(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("the label is empty")
        if any(ord(c) < 32 for c in value):
            raise ValueError("the label has control characters")
        return value

    @field_validator("scopes")
    @classmethod
    def _scopes_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a scope is named twice")
        return value


class TokenOut(BaseModel):
    id: str = Field(description="The token's jti: what revokes it")
    label: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="The token itself: shown this once, never again")


class TokenList(BaseModel):
    items: list[TokenOut]


def settings_of(runtime: Any) -> Settings:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    return settings


@router.get("", response_model=TokenList)
async def list_tokens(principal: Operator, uow: UowDep) -> Any:
    """This tenant's tokens sync-svc issued, newest first (revoked and expired ones too)."""
    return {"items": await tokens.list_tokens(uow, principal.tenant_id)}


@router.post("", response_model=TokenCreated, status_code=201, responses={409: {"description": "`too_many_tokens`"}})
async def create_token(body: TokenIn, principal: Operator, runtime: RuntimeDep, uow: UowDep) -> Any:
    settings = settings_of(runtime)
    try:
        issued = await tokens.issue(
            uow,
            settings.signing_key,
            settings.jwt_issuer,
            principal.tenant_id,
            body.label,
            list(body.scopes),
            body.ttl_days,
        )
    except tokens.TooManyTokens as exc:
        raise Problem(409, "too_many_tokens", str(exc)) from exc
    await uow.commit()
    return {**issued.item, "token": issued.token}


@router.delete("/{token_id}", status_code=204, responses={404: {"description": "`token_not_found`"}})
async def revoke_token(token_id: str, principal: Operator, request: Request, uow: UowDep) -> Response:
    """Revoke a token of this tenant, on every service within seconds. Idempotent."""
    if not TOKEN_ID.fullmatch(token_id) or not await tokens.revoke(uow, principal.tenant_id, token_id):
        raise Problem(404, "token_not_found", f"this tenant has no token {token_id[:64]!r}")
    await uow.commit()
    # In effect here at once; the other services apply token.revoked when it reaches them.
    revocations: RevocationList | None = getattr(request.app.state, "revocations", None)
    if revocations is not None:
        revocations.add(principal.tenant_id, token_id)
    return Response(status_code=204)
