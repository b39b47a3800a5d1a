"""Tenant tokens: signed, tenant-scoped JWTs that every service verifies without a shared database.

A token names one tenant (``tid``) and the scopes it grants (``erp``, ``operator``, ``internal``).
Services always filter by the token's tenant, so a token for tenant A can never reach tenant B.

Tokens are signed with Ed25519 (JWS ``EdDSA``). Only the issuer — the ``koppel`` command — holds a
private key; services and the console hold public keys only, so a compromised service can check
tokens but not mint them. Each key has an id (``kid``, in the token's header): verifiers accept
every key in their list and the issuer signs with one, so a key is rotated by adding the new public
key everywhere, then signing with the new key, then dropping the old public key once the tokens it
signed are no longer used.

A service that calls another (mandate-svc and bookkeeping-svc call sync-svc's ``/internal`` API)
holds a *service token* the issuer made for it: scope ``internal`` only and no tenant of its own;
the call names the tenant it acts for in ``X-Koppel-Tenant``.

An *admin token* (scope ``admin`` only, no tenant) is for the installation itself: it creates
tenants (sync-svc's ``POST /v1/tenants``) and nothing else; tenant routes refuse it. The ``koppel``
command issues it (``koppel token admin``); ``koppel run`` writes one for the local system.

sync-svc is a second issuer, for tokens made from the browser (``/v1/tokens``): it has a signing
key of its own (``KOPPEL_SYNC_TOKEN_SIGNING_KEY``, a kid apart from the command's), whose public
entry is in every verifier's list. A token is revoked by its ``jti`` (koppel_shared.revocations).

Keys are written ``<kid>:<base64url of the 32 raw key bytes>``: a signing key as its private seed,
public keys as a comma-separated list of those.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

ALGORITHM = "EdDSA"
SCOPES = ("erp", "operator", "internal", "admin")
# The scopes issued to tenants (``admin`` belongs to admin tokens, ``internal`` to service tokens).
TENANT_SCOPES = ("erp", "operator")
# What stands for "no tenant" where a tenant id is needed: no tenant is ever given this id.
NO_TENANT = uuid.UUID(int=0)
TENANT_HEADER = "X-Koppel-Tenant"
KID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class TokenError(Exception):
    """The token is missing, malformed, expired or not signed by us."""


class KeyFormatError(ValueError):
    """A key setting is not ``<kid>:<base64url of 32 bytes>``."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _split(entry: str) -> tuple[str, bytes]:
    kid, sep, value = entry.strip().partition(":")
    if not sep or not KID.fullmatch(kid):
        raise KeyFormatError("a key is written <kid>:<base64url of 32 bytes>, kid of letters, digits, . _ -")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(f"key {kid!r} is not base64url") from exc
    if len(raw) != 32:
        raise KeyFormatError(f"key {kid!r} is not 32 bytes")
    return kid, raw


@dataclass(frozen=True)
class SigningKey:
    """The issuer's private key and its id."""

    kid: str
    private: Ed25519PrivateKey

    @classmethod
    def parse(cls, text: str) -> SigningKey:
        kid, raw = _split(text)
        return cls(kid, Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def generate(cls, kid: str) -> SigningKey:
        if not KID.fullmatch(kid):
            raise KeyFormatError("a kid is 1-64 letters, digits, . _ -")
        return cls(kid, Ed25519PrivateKey.generate())

    def encoded(self) -> str:
        seed = self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"{self.kid}:{_b64(seed)}"

    def public_entry(self) -> str:
        """This key's entry for the verifiers' list of public keys."""
        return f"{self.kid}:{_b64(self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))}"


@dataclass(frozen=True)
class PublicKeys:
    """The public keys a verifier accepts, by kid."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def parse(cls, text: str) -> PublicKeys:
        return _parse_public_keys(text)

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self.keys)


@lru_cache(maxsize=16)
def _parse_public_keys(text: str) -> PublicKeys:
    keys: dict[str, Ed25519PublicKey] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        kid, raw = _split(entry)
        if kid in keys:
            raise KeyFormatError(f"kid {kid!r} appears twice")
        keys[kid] = Ed25519PublicKey.from_public_bytes(raw)
    if not keys:
        raise KeyFormatError("at least one public key is needed")
    return PublicKeys(keys)


@dataclass(frozen=True)
class TenantPrincipal:
    tenant_id: uuid.UUID
    scopes: frozenset[str]
    subject: str
    token_id: str
    # The calling service, for a service token (which acts for the tenant the call names).
    service: str | None = None
    # An admin token: no tenant at all (``tenant_id`` is NO_TENANT); tenant routes refuse it.
    admin: bool = False

    def has(self, scope: str) -> bool:
        return scope in self.scopes

    @property
    def token_tenant(self) -> uuid.UUID:
        """The tenant the token itself names (NO_TENANT for admin and service tokens): the key its
        revocation is recorded under."""
        return NO_TENANT if self.admin or self.service is not None else self.tenant_id


def _sign(key: SigningKey, claims: Mapping[str, object], ttl: timedelta) -> str:
    return _sign_with_id(key, claims, ttl)[0]


def _sign_with_id(key: SigningKey, claims: Mapping[str, object], ttl: timedelta) -> tuple[str, str, datetime]:
    now = datetime.now(UTC).replace(microsecond=0)
    expires, jti = now + ttl, uuid.uuid4().hex
    claims = {**claims, "iat": int(now.timestamp()), "exp": int(expires.timestamp()), "jti": jti}
    return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid}), jti, expires


def issue_token(
    key: SigningKey,
    tenant_id: uuid.UUID | str,
    scopes: list[str] | tuple[str, ...] = ("erp",),
    ttl: timedelta = timedelta(days=365),
    subject: str | None = None,
    issuer: str = "koppel",
) -> str:
    return issue_token_with_id(key, tenant_id, scopes, ttl, subject, issuer)[0]


def issue_token_with_id(
    key: SigningKey,
    tenant_id: uuid.UUID | str,
    scopes: list[str] | tuple[str, ...] = ("erp",),
    ttl: timedelta = timedelta(days=365),
    subject: str | None = None,
    issuer: str = "koppel",
) -> tuple[str, str, datetime]:
    """``issue_token``, with the token's id (``jti``, what revokes it) and when it expires."""
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes: {sorted(unknown)}")
    if "admin" in scopes:
        raise ValueError("an admin token has no tenant: issue_admin_token")
    tid = str(uuid.UUID(str(tenant_id)))
    claims = {"iss": issuer, "sub": subject or f"tenant:{tid}", "tid": tid, "scope": " ".join(scopes)}
    return _sign_with_id(key, claims, ttl)


def issue_admin_token(
    key: SigningKey, ttl: timedelta = timedelta(days=30), subject: str = "admin", issuer: str = "koppel"
) -> str:
    """An installation-wide token (scope ``admin``, no tenant): creates tenants, nothing else."""
    return _sign(key, {"iss": issuer, "sub": f"admin:{subject}", "adm": True, "scope": "admin"}, ttl)


def issue_service_token(
    key: SigningKey, service: str, ttl: timedelta = timedelta(days=365), issuer: str = "koppel"
) -> str:
    """A token one service uses to call another's ``/internal`` API for any tenant it names."""
    if not KID.fullmatch(service):
        raise ValueError("a service name is letters, digits, . _ -")
    return _sign(key, {"iss": issuer, "sub": f"service:{service}", "svc": service, "scope": "internal"}, ttl)


def token_kid(token: str) -> str | None:
    """The kid in a token's header, unverified (None when the token cannot be read)."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def verify_token(
    keys: PublicKeys | str,
    token: str,
    issuer: str = "koppel",
    acting_for: uuid.UUID | str | None = None,
) -> TenantPrincipal:
    """The principal of a token signed by one of ``keys``. A service token acts for the tenant
    named in ``acting_for`` (the ``X-Koppel-Tenant`` header) and only with scope ``internal``."""
    public = PublicKeys.parse(keys) if isinstance(keys, str) else keys
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise TokenError(f"tokens are signed with {ALGORITHM}, not {header.get('alg')!r}")
        key = public.keys.get(str(header.get("kid")))
        if key is None:
            raise TokenError(f"the token is signed by an unknown key (kid {header.get('kid')!r})")
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], issuer=issuer, options={"require": ["exp", "iat", "sub"]}
        )
        scopes = frozenset(str(claims.get("scope", "")).split())
        service, admin = None, False
        if "tid" in claims:
            if not scopes <= set(TENANT_SCOPES) | {"internal"}:
                raise TokenError(f"a tenant token cannot carry the scopes {sorted(scopes - set(TENANT_SCOPES))}")
            tenant_id = uuid.UUID(claims["tid"])
            if tenant_id == NO_TENANT:
                raise TokenError("the token names no tenant")
        elif claims.get("adm") is True and scopes == {"admin"} and "svc" not in claims:
            tenant_id, admin = NO_TENANT, True
        elif "svc" in claims and scopes == {"internal"}:
            service = str(claims["svc"])
            if acting_for is None:
                raise TokenError(f"a service token names the tenant it acts for in {TENANT_HEADER}")
            tenant_id = uuid.UUID(str(acting_for))
        else:
            raise TokenError("the token names no tenant")
    except (jwt.PyJWTError, ValueError, KeyError) as exc:
        raise TokenError(str(exc)) from exc
    return TenantPrincipal(
        tenant_id=tenant_id,
        scopes=scopes,
        subject=str(claims["sub"]),
        token_id=str(claims.get("jti", "")),
        service=service,
        admin=admin,
    )
