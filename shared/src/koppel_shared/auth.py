"""Tenant tokens: signed, tenant-scoped JWTs that every service verifies without a shared database.

A token names one tenant (``tid``) and the scopes it grants (``erp``, ``operator``, ``internal``).
Services always filter by the token's tenant, so a token for tenant A can never reach tenant B.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"
SCOPES = ("erp", "operator", "internal")


class TokenError(Exception):
    """The token is missing, malformed, expired or not signed by us."""


@dataclass(frozen=True)
class TenantPrincipal:
    tenant_id: uuid.UUID
    scopes: frozenset[str]
    subject: str
    token_id: str

    def has(self, scope: str) -> bool:
        return scope in self.scopes


def issue_token(
    secret: str,
    tenant_id: uuid.UUID | str,
    scopes: list[str] | tuple[str, ...] = ("erp",),
    ttl: timedelta = timedelta(days=365),
    subject: str | None = None,
    issuer: str = "koppel",
) -> str:
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")
    now = datetime.now(UTC)
    tid = str(uuid.UUID(str(tenant_id)))
    claims = {
        "iss": issuer,
        "sub": subject or f"tenant:{tid}",
        "tid": tid,
        "scope": " ".join(scopes),
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str, issuer: str = "koppel") -> TenantPrincipal:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={"require": ["exp", "iat", "tid", "sub"]},
        )
        tenant_id = uuid.UUID(claims["tid"])
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise TokenError(str(exc)) from exc
    return TenantPrincipal(
        tenant_id=tenant_id,
        scopes=frozenset(str(claims.get("scope", "")).split()),
        subject=str(claims["sub"]),
        token_id=str(claims.get("jti", "")),
    )
