"""Issuing and checking OAuth tokens. Access tokens are HS256 JWTs carrying Twinfield's `twf.*`
claims (so a client may read the cluster URL from the token, as Twinfield's own sample does), and
are also recorded in the state so they can be expired or revoked on command."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

from .state import AccessToken, RefreshToken, SandboxState

ISSUER_PATH = "/auth/authentication"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(state: SandboxState, claims: dict) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(state.jwt_secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def claims(state: SandboxState, token: AccessToken, base_url: str) -> dict:
    organisation = state.organisations.get(token.organisation)
    return {
        "iss": base_url + ISSUER_PATH,
        "aud": base_url + ISSUER_PATH + "/resources",
        "nbf": str(int(token.issued_at)),
        "exp": str(int(token.expires_at)),
        "client_id": token.client_id,
        "scope": token.scope,
        "sub": f"{token.organisation}:{token.user}",
        "auth_time": str(int(token.issued_at)),
        "idp": "idsrv",
        "amr": ["password"],
        "twf.organisationUserCode": token.user,
        "twf.organisationCode": token.organisation,
        "twf.organisationId": organisation.id if organisation else "",
        "twf.clusterUrl": base_url,
    }


def issue_access_token(
    state: SandboxState, *, client_id: str, organisation: str, user: str, scope: list[str], base_url: str
) -> AccessToken:
    now = state.now()
    token = AccessToken(
        token="",
        client_id=client_id,
        organisation=organisation,
        user=user,
        scope=list(scope),
        issued_at=now,
        expires_at=now + state.config.access_token_seconds,
    )
    # The jti makes every token unique even when two are minted in the same second.
    token.token = jwt(state, {**claims(state, token, base_url), "jti": secrets.token_hex(8)})
    state.access_tokens[token.token] = token
    return token


def issue_refresh_token(
    state: SandboxState, *, client_id: str, organisation: str, user: str, scope: list[str]
) -> RefreshToken:
    token = RefreshToken(
        token=secrets.token_hex(32),
        client_id=client_id,
        organisation=organisation,
        user=user,
        scope=list(scope),
    )
    state.refresh_tokens[token.token] = token
    return token


def valid_access_token(state: SandboxState, raw: str | None) -> AccessToken | None:
    if not raw:
        return None
    token = state.access_tokens.get(raw.strip())
    if token is None or token.revoked or token.expires_at <= state.now():
        return None
    if token.organisation not in state.organisations or token.client_id not in state.clients:
        return None
    return token


def revoke_consent(state: SandboxState, client_id: str, organisation: str | None) -> int:
    """Withdraw the organisation's consent for a client: its refresh tokens stop working
    (invalid_grant) and its access tokens are refused (fault 354). Returns tokens revoked."""
    count = 0
    for token in list(state.refresh_tokens.values()) + list(state.access_tokens.values()):
        ours = token.client_id == client_id and organisation in (None, token.organisation)
        if ours and not token.revoked:
            token.revoked = True
            count += 1
    return count
