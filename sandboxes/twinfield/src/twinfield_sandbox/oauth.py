"""Twinfield's OpenID Connect endpoints at their real paths under `/auth/authentication`:
authorize (with a small consent page), token (authorization_code and refresh_token grants, HTTP
Basic client authentication, no PKCE: a code_verifier is refused), accesstokenvalidation (gives
the cluster URL = this sandbox) and userinfo, plus the discovery document.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from lxml import etree
from lxml.html import builder as E

from .sandbox import Sandbox, get_sandbox
from .state import AuthCode, OAuthClient
from .tokens import ISSUER_PATH, claims, issue_access_token, issue_refresh_token, jwt, valid_access_token

BASE = ISSUER_PATH + "/connect"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}

router = APIRouter()


def _redirect_allowed(client: OAuthClient, redirect_uri: str) -> bool:
    if redirect_uri in client.redirect_uris:
        return True
    parts = urlsplit(redirect_uri)
    return client.allow_loopback_redirects and parts.scheme in ("http", "https") and parts.hostname in LOOPBACK_HOSTS


def _html(title: str, *content) -> Response:
    page = E.HTML(E.HEAD(E.TITLE(title)), E.BODY(E.H1(title), *content))
    return Response(
        etree.tostring(page, method="html", encoding="unicode", doctype="<!DOCTYPE html>"),
        media_type="text/html; charset=utf-8",
    )


def _redirect(redirect_uri: str, params: dict[str, str]) -> RedirectResponse:
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(redirect_uri + separator + urlencode(params), status_code=302)


@router.get(BASE + "/authorize")
async def authorize(request: Request) -> Response:
    sandbox = get_sandbox(request)
    q = request.query_params
    client = sandbox.state.clients.get(q.get("client_id", ""))
    redirect_uri = q.get("redirect_uri", "")
    if client is None:
        return _html("Unknown client", E.P("The client_id is not registered with this sandbox."))
    if not redirect_uri or not _redirect_allowed(client, redirect_uri):
        return _html("Invalid redirect_uri", E.P(f"{redirect_uri!r} is not registered for this client."))
    state_param = q.get("state", "")
    error_params = {"state": state_param} if state_param else {}
    if q.get("response_type") != "code":
        # The sandbox does the server-side code flow only; the implicit flow is not offered.
        return _redirect(redirect_uri, {"error": "unsupported_response_type", **error_params})
    if not q.get("nonce"):
        # Twinfield requires a nonce on every authorize request (reference §1.1).
        return _redirect(
            redirect_uri, {"error": "invalid_request", "error_description": "nonce is required", **error_params}
        )
    scope = q.get("scope", "")
    organisations = sorted(sandbox.state.organisations.values(), key=lambda o: o.code)
    hidden = {
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state_param,
        "nonce": q.get("nonce", ""),
    }
    form = E.FORM(
        *[E.INPUT(type="hidden", name=key, value=value) for key, value in hidden.items()],
        E.P(f"{client.name} ({client.client_id}) asks for access: {scope}"),
        E.LABEL(
            "Organisation ", E.SELECT(*[E.OPTION(o.name, value=o.code) for o in organisations], name="organisation")
        ),
        E.BR(),
        E.LABEL("User ", E.INPUT(type="text", name="user", value="APIUSER")),
        E.BR(),
        E.BUTTON("Allow", type="submit", name="decision", value="allow"),
        E.BUTTON("Deny", type="submit", name="decision", value="deny"),
        method="post",
        action=BASE + "/authorize/consent",
    )
    return _html("Twinfield sandbox: grant access", form)


@router.post(BASE + "/authorize/consent")
async def consent(request: Request) -> Response:
    sandbox = get_sandbox(request)
    form = await request.form()
    client = sandbox.state.clients.get(str(form.get("client_id", "")))
    redirect_uri = str(form.get("redirect_uri", ""))
    if client is None or not _redirect_allowed(client, redirect_uri):
        return _html("Invalid request", E.P("Unknown client or redirect_uri."))
    state_param = str(form.get("state", ""))
    extra = {"state": state_param} if state_param else {}
    organisation = str(form.get("organisation", ""))
    if form.get("decision") != "allow":
        return _redirect(redirect_uri, {"error": "access_denied", **extra})
    if organisation not in sandbox.state.organisations:
        return _redirect(redirect_uri, {"error": "access_denied", "error_description": "unknown organisation", **extra})
    code = AuthCode(
        code=secrets.token_urlsafe(24),
        client_id=client.client_id,
        organisation=organisation,
        user=str(form.get("user") or "APIUSER"),
        redirect_uri=redirect_uri,
        scope=str(form.get("scope", "")).split(),
        nonce=str(form.get("nonce") or "") or None,
        expires_at=sandbox.state.now() + sandbox.config.auth_code_seconds,
    )
    sandbox.state.auth_codes[code.code] = code
    return _redirect(redirect_uri, {"code": code.code, **extra})


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _client_credentials(request: Request, form) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip()).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    # Twinfield documents Basic; form credentials are accepted too, as most OAuth servers do.
    if form.get("client_id"):
        return str(form.get("client_id")), str(form.get("client_secret", ""))
    return None


@router.post(BASE + "/token")
async def token(request: Request) -> Response:
    sandbox = get_sandbox(request)
    form = await request.form()
    credentials = _client_credentials(request, form)
    client = sandbox.state.clients.get(credentials[0]) if credentials else None
    if client is None or credentials is None or not secrets.compare_digest(client.client_secret, credentials[1]):
        return _oauth_error("invalid_client", "Client authentication failed.", 401)

    rule = sandbox.faults.pick("token", client.client_id)
    if rule is not None and rule.when == "before":
        return await _token_fault(rule)

    grant_type = form.get("grant_type")
    if grant_type == "authorization_code":
        response = _code_grant(sandbox, request, client, form)
    elif grant_type == "refresh_token":
        response = _refresh_grant(sandbox, request, client, form)
    else:
        response = _oauth_error("unsupported_grant_type", f"grant_type {grant_type!r} is not supported.")
    if rule is not None:
        return await _token_fault(rule)
    return response


async def _token_fault(rule) -> Response:
    if rule.kind == "timeout":
        await asyncio.sleep(rule.delay_seconds)
        return Response("Gateway Timeout", status_code=504)
    if rule.kind == "rate_limit":
        return Response("Too Many Requests", status_code=429, headers={"Retry-After": str(rule.retry_after)})
    if rule.kind == "expired_token":
        return _oauth_error("invalid_grant", "Injected fault: grant expired.")
    return Response("Internal Server Error", status_code=rule.status)


def _token_reply(
    sandbox: Sandbox,
    request: Request,
    client: OAuthClient,
    organisation: str,
    user: str,
    scope: list[str],
    refresh: str | None,
    nonce: str | None = None,
) -> JSONResponse:
    base_url = sandbox.base_url(request)
    access = issue_access_token(
        sandbox.state, client_id=client.client_id, organisation=organisation, user=user, scope=scope, base_url=base_url
    )
    body: dict[str, object] = {
        "access_token": access.token,
        "expires_in": sandbox.config.access_token_seconds,
        "token_type": "Bearer",
    }
    if refresh:
        body["refresh_token"] = refresh
    if "openid" in scope:
        id_claims = {**claims(sandbox.state, access, base_url), "aud": client.client_id}
        if nonce:
            id_claims["nonce"] = nonce
        body["id_token"] = jwt(sandbox.state, id_claims)
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _code_grant(sandbox: Sandbox, request: Request, client: OAuthClient, form) -> Response:
    code = sandbox.state.auth_codes.get(str(form.get("code", "")))
    if code is None or code.client_id != client.client_id:
        return _oauth_error("invalid_grant", "Unknown authorization code.")
    if code.used or code.expires_at <= sandbox.state.now():
        return _oauth_error("invalid_grant", "Authorization code expired or already used.")
    if form.get("code_verifier") is not None:
        # Twinfield's login server has IdentityServer3's endpoints, and IdentityServer3 decides
        # PKCE by the client's registered flow, not by the request. A client registered for the
        # authorization code flow (the only code flow Twinfield documents) has its code_challenge
        # ignored at authorize and a code_verifier refused here, the code already spent
        # (reference §1.1, "PKCE").
        code.used = True
        return _oauth_error("invalid_grant", "Unexpected code_verifier for a client without PKCE.")
    redirect_uri = form.get("redirect_uri")
    # redirect_uri is checked when sent; whether Twinfield insists on it is unconfirmed.
    if redirect_uri is not None and redirect_uri != code.redirect_uri:
        return _oauth_error("invalid_grant", "redirect_uri does not match the authorize request.")
    code.used = True
    refresh = None
    if "offline_access" in code.scope:
        refresh = issue_refresh_token(
            sandbox.state, client_id=client.client_id, organisation=code.organisation, user=code.user, scope=code.scope
        ).token
    return _token_reply(sandbox, request, client, code.organisation, code.user, code.scope, refresh, code.nonce)


def _refresh_grant(sandbox: Sandbox, request: Request, client: OAuthClient, form) -> Response:
    refresh = sandbox.state.refresh_tokens.get(str(form.get("refresh_token", "")))
    if refresh is None or refresh.client_id != client.client_id or refresh.revoked:
        return _oauth_error("invalid_grant", "The refresh token is invalid or consent was revoked.")
    if refresh.organisation not in sandbox.state.organisations:
        return _oauth_error("invalid_grant", "The organisation no longer exists.")
    # No rotation: the same refresh token comes back, which a client must store anyway.
    return _token_reply(sandbox, request, client, refresh.organisation, refresh.user, refresh.scope, refresh.token)


@router.get(BASE + "/accesstokenvalidation")
async def accesstokenvalidation(request: Request, token: str = "") -> Response:
    sandbox = get_sandbox(request)
    access = valid_access_token(sandbox.state, token)
    if access is None:
        return JSONResponse({"Message": "Token is invalid or expired."}, status_code=400)
    return JSONResponse(claims(sandbox.state, access, sandbox.base_url(request)))


@router.get(BASE + "/userinfo")
async def userinfo(request: Request) -> Response:
    sandbox = get_sandbox(request)
    header = request.headers.get("authorization", "")
    raw = header[7:].strip() if header.lower().startswith("bearer ") else ""
    access = valid_access_token(sandbox.state, raw)
    if access is None:
        return JSONResponse(
            {"error": "invalid_token"}, status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    organisation = sandbox.state.organisations[access.organisation]
    return JSONResponse(
        {
            "sub": f"{access.organisation}:{access.user}",
            "twf.organisationUserCode": access.user,
            "twf.organisationCode": access.organisation,
            "twf.organisationId": organisation.id,
            "twf.clusterUrl": sandbox.base_url(request),
        }
    )


@router.get(ISSUER_PATH + "/.well-known/openid-configuration")
async def discovery(request: Request) -> Response:
    base = get_sandbox(request).base_url(request)
    return JSONResponse(
        {
            "issuer": base + ISSUER_PATH,
            "authorization_endpoint": base + BASE + "/authorize",
            "token_endpoint": base + BASE + "/token",
            "userinfo_endpoint": base + BASE + "/userinfo",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "offline_access", "twf.user", "twf.organisation", "twf.organisationUser"],
        }
    )
