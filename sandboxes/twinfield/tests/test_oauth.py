"""The OpenID Connect code flow at Twinfield's paths, refresh, validation and consent revocation."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import httpx
from lxml import html

from twinfield_sandbox.testing import OFFICE, ORG

CLIENT_ID = "koppel-sandbox"
SECRET = "koppel-sandbox-secret"
REDIRECT = "http://127.0.0.1:9999/callback"
SCOPE = "openid offline_access twf.organisation twf.organisationUser twf.user"


def _basic(client_id: str = CLIENT_ID, secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _consent(http: httpx.Client, decision: str = "allow", **overrides: str) -> httpx.Response:
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": SCOPE,
        "state": "xyz-state",
        "nonce": "n-123",
        **overrides,
    }
    page = http.get("/auth/authentication/connect/authorize", params=params)
    assert page.status_code == 200
    form = html.fromstring(page.text).forms[0]
    fields = dict(form.fields)
    fields["decision"] = decision
    return http.post(form.action, data=fields)


def test_code_flow_gives_tokens_whose_validation_names_the_sandbox_as_cluster(http, server) -> None:
    redirect = _consent(http)
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["xyz-state"]
    code = query["code"][0]

    reply = http.post(
        "/auth/authentication/connect/token",
        headers=_basic(),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
    )
    assert reply.status_code == 200, reply.text
    tokens = reply.json()
    assert tokens["expires_in"] == 3600
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"]
    # The access token is a JWT that carries the cluster, as Twinfield's are.
    payload = tokens["access_token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["twf.clusterUrl"] == server.base_url

    validation = http.get(
        "/auth/authentication/connect/accesstokenvalidation", params={"token": tokens["access_token"]}
    )
    assert validation.status_code == 200
    assert validation.json()["twf.clusterUrl"] == server.base_url
    assert validation.json()["twf.organisationCode"] == ORG

    userinfo = http.get(
        "/auth/authentication/connect/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.json()["twf.organisationUserCode"] == "APIUSER"

    refreshed = http.post(
        "/auth/authentication/connect/token",
        headers=_basic(),
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert refreshed.status_code == 200
    assert refreshed.json()["access_token"] != tokens["access_token"]
    assert refreshed.json()["refresh_token"] == tokens["refresh_token"]

    # A code works once.
    again = http.post(
        "/auth/authentication/connect/token",
        headers=_basic(),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
    )
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_denied_consent_redirects_with_access_denied(http) -> None:
    redirect = _consent(http, decision="deny")
    assert parse_qs(urlsplit(redirect.headers["location"]).query)["error"] == ["access_denied"]


def test_authorize_without_nonce_is_refused(http) -> None:
    reply = http.get(
        "/auth/authentication/connect/authorize",
        params={
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT,
            "response_type": "code",
            "scope": SCOPE,
            "state": "s",
        },
    )
    assert reply.status_code == 302
    assert parse_qs(urlsplit(reply.headers["location"]).query)["error"] == ["invalid_request"]


def test_wrong_client_secret_is_invalid_client(http) -> None:
    reply = http.post(
        "/auth/authentication/connect/token",
        headers=_basic(secret="wrong"),
        data={"grant_type": "refresh_token", "refresh_token": "x"},
    )
    assert reply.status_code == 401
    assert reply.json()["error"] == "invalid_client"


def test_registered_client_must_use_its_redirect_uri(http) -> None:
    created = http.post("/_sandbox/clients", json={"name": "ERP app", "redirect_uris": ["https://erp.example/cb"]})
    client = created.json()
    ok = http.get(
        "/auth/authentication/connect/authorize",
        params={
            "client_id": client["client_id"],
            "redirect_uri": "https://erp.example/cb",
            "response_type": "code",
            "scope": SCOPE,
            "nonce": "n",
            "state": "s",
        },
    )
    assert "<form" in ok.text
    bad = http.get(
        "/auth/authentication/connect/authorize",
        params={
            "client_id": client["client_id"],
            "redirect_uri": "https://evil.example/cb",
            "response_type": "code",
            "scope": SCOPE,
            "nonce": "n",
            "state": "s",
        },
    )
    assert "<form" not in bad.text


def test_revoked_consent_makes_refresh_invalid_grant(http) -> None:
    issued = http.post("/_sandbox/tokens", json={"client_id": CLIENT_ID, "organisation": ORG}).json()
    assert issued["offices"] == [OFFICE]
    ok = http.post(
        "/auth/authentication/connect/token",
        headers=_basic(),
        data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
    )
    assert ok.status_code == 200
    revoked = http.post("/_sandbox/consent/revoke", json={"client_id": CLIENT_ID, "organisation": ORG})
    assert revoked.json()["revoked"] >= 1
    refused = http.post(
        "/auth/authentication/connect/token",
        headers=_basic(),
        data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


def test_expired_access_token_fails_validation_with_400(http) -> None:
    issued = http.post("/_sandbox/tokens", json={"client_id": CLIENT_ID, "organisation": ORG}).json()
    http.post("/_sandbox/clock/advance", json={"seconds": 3601})
    reply = http.get("/auth/authentication/connect/accesstokenvalidation", params={"token": issued["access_token"]})
    assert reply.status_code == 400


def test_code_verifier_is_refused_and_spends_the_code(http) -> None:
    # A client registered for the authorization code flow gets no PKCE from IdentityServer3: a
    # code_challenge at authorize is ignored, a code_verifier at the token endpoint is invalid_grant.
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 appendix B
    redirect = _consent(http, code_challenge=challenge, code_challenge_method="S256")
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    refused = http.post(
        "/auth/authentication/connect/token",
        headers=_basic(),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        },
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    # The code is gone after the refused try, as IdentityServer3 removes it before checking.
    retry = http.post(
        "/auth/authentication/connect/token",
        headers=_basic(),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
    )
    assert retry.json()["error"] == "invalid_grant"


def test_code_challenge_at_authorize_is_ignored(http) -> None:
    challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    redirect = _consent(http, code_challenge=challenge, code_challenge_method="S256")
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    reply = http.post(
        "/auth/authentication/connect/token",
        headers=_basic(),
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["access_token"]
