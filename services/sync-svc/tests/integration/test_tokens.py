"""Tenants created and tokens issued, listed and revoked through sync-svc's API, on the real
PostgreSQL: an admin token creates a tenant and its first operator token; an operator manages
its own tenant's tokens only; a revoked token is refused by sync-svc at once and ``token.revoked``
goes out through the outbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa

from koppel_shared.auth import issue_admin_token, issue_service_token, issue_token, verify_token
from koppel_shared.migrations import migrate
from koppel_shared.testing.fixtures import TEST_SIGNING_KEY, TEST_SYNC_SIGNING_KEY, settings_for_test
from koppel_shared.testing.service_checks import api_client
from sync_svc.bootstrap import definition
from sync_svc.settings import Settings

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": f"Bearer {issue_admin_token(TEST_SIGNING_KEY, subject='test')}"}


@pytest.fixture(scope="module")
async def settings(database_url: str, broker_prefix: str, cleanup_exchange: None) -> Settings:
    s = settings_for_test(Settings, database_url, broker_prefix, known_tenants_only=True)
    await migrate(definition.migrations_dir, s.database_url)
    return s


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(definition, settings) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_tenant(api: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """A tenant created with the admin token, and its first operator token's header."""
    r = await api.post("/v1/tenants", headers=ADMIN, json={"name": f"Tenant {uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    return r.json()["tenant_id"], bearer(r.json()["operator_token"])


async def outbox(settings: Settings, type_: str) -> list[dict[str, Any]]:
    engine = sa.ext.asyncio.create_async_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT body FROM outbox WHERE type = :t ORDER BY seq"), {"t": type_})
            return [json.loads(row.body) for row in rows]
    finally:
        await engine.dispose()


async def test_admin_creates_a_tenant_with_an_operator_token_signed_by_sync_svc(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    name = f"Acme BV {uuid.uuid4().hex[:6]}"
    r = await api.post("/v1/tenants", headers=ADMIN, json={"name": f"  {name} "})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == name and uuid.UUID(body["tenant_id"])
    principal = verify_token(settings.public_keys, body["operator_token"])
    assert str(principal.tenant_id) == body["tenant_id"] and principal.scopes == {"operator"}
    assert jwt.get_unverified_header(body["operator_token"])["kid"] == TEST_SYNC_SIGNING_KEY.kid
    claims = jwt.decode(body["operator_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 30 * 86400
    # The tenant is registered everywhere through tenant.registered, and the token works at once here.
    registered = [e for e in await outbox(settings, "tenant.registered") if e["tenant_id"] == body["tenant_id"]]
    assert [e["data"]["name"] for e in registered] == [name]
    listed = await api.get("/v1/tokens", headers=bearer(body["operator_token"]))
    assert listed.status_code == 200, listed.text
    [first] = listed.json()["items"]
    assert first["id"] == body["operator_token_id"] == claims["jti"]
    assert first["scopes"] == ["operator"] and first["revoked_at"] is None and "token" not in first
    # The same name again is refused and creates nothing.
    again = await api.post("/v1/tenants", headers=ADMIN, json={"name": name.upper()})
    assert again.status_code == 409 and again.json()["code"] == "tenant_name_taken"
    assert len([e for e in await outbox(settings, "tenant.registered") if e["data"]["name"] == name.upper()]) == 0


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "   "}, {"name": "x" * 201}, {"name": "a\nb"}])
async def test_a_tenant_without_a_proper_name_is_refused(api: httpx.AsyncClient, body: dict[str, Any]) -> None:
    r = await api.post("/v1/tenants", headers=ADMIN, json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["field"].endswith("name"), r.text


async def test_only_an_admin_or_the_tenants_own_operator_token_creates_or_registers_a_tenant(
    api: httpx.AsyncClient,
) -> None:
    erp = bearer(issue_token(TEST_SIGNING_KEY, uuid.uuid4(), ["erp"]))
    r = await api.post("/v1/tenants", headers=erp, json={"name": "No operator"})
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    service = {**bearer(issue_service_token(TEST_SIGNING_KEY, "mandate")), "X-Koppel-Tenant": str(uuid.uuid4())}
    r = await api.post("/v1/tenants", headers=service, json={"name": "Service"})
    assert r.status_code == 403
    # The existing form: a token the koppel command issued for a tenant registers that tenant.
    tenant = uuid.uuid4()
    own = bearer(issue_token(TEST_SIGNING_KEY, tenant, ["operator"]))
    r = await api.post("/v1/tenants", headers=own, json={"name": f"Self {tenant.hex[:6]}"})
    assert r.status_code == 201 and r.json()["tenant_id"] == str(tenant) and "operator_token" not in r.json()
    assert (await api.post("/v1/tenants", headers=own, json={"name": "Again"})).status_code == 200


async def test_an_admin_token_is_refused_on_tenant_routes(api: httpx.AsyncClient) -> None:
    for method, path in [("GET", "/v1/tokens"), ("POST", "/v1/tokens"), ("GET", "/v1/twikey/connection")]:
        body = {"label": "x", "scopes": ["erp"]} if method == "POST" else None
        r = await api.request(method, path, headers=ADMIN, json=body)
        assert r.status_code == 403 and r.json()["code"] == "insufficient_scope", (path, r.text)


async def test_an_operator_issues_a_token_that_is_shown_once_and_works(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    tenant, operator = await new_tenant(api)
    r = await api.post("/v1/tokens", headers=operator, json={"label": "ERP production", "scopes": ["erp"]})
    assert r.status_code == 201, r.text
    made = r.json()
    principal = verify_token(settings.public_keys, made["token"])
    assert str(principal.tenant_id) == tenant and principal.scopes == {"erp"} and principal.token_id == made["id"]
    claims = jwt.decode(made["token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 365 * 86400  # the default
    assert made["label"] == "ERP production" and made["scopes"] == ["erp"] and made["revoked_at"] is None
    listed = (await api.get("/v1/tokens", headers=operator)).json()["items"]
    assert len(listed) == 2 and listed[0]["id"] == made["id"]  # newest first, the first operator token after
    assert made["token"] not in json.dumps(listed)
    # An erp token is a valid token of the tenant, but manages no tokens.
    r = await api.get("/v1/tokens", headers=bearer(made["token"]))
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    both = await api.post(
        "/v1/tokens", headers=operator, json={"label": "Ops", "scopes": ["erp", "operator"], "ttl_days": 1}
    )
    assert both.status_code == 201 and verify_token(settings.public_keys, both.json()["token"]).scopes == {
        "erp",
        "operator",
    }


@pytest.mark.parametrize(
    "body",
    [
        {"label": "x", "scopes": []},
        {"label": "x", "scopes": ["internal"]},
        {"label": "x", "scopes": ["admin"]},
        {"label": "x", "scopes": ["erp", "erp"]},
        {"label": "x", "scopes": "erp"},
        {"label": "x", "scopes": ["erp"], "ttl_days": 0},
        {"label": "x", "scopes": ["erp"], "ttl_days": 731},
        {"label": "x", "scopes": ["erp"], "ttl_days": "30"},
        {"label": "x", "scopes": ["erp"], "ttl_days": 1.5},
        {"label": "", "scopes": ["erp"]},
        {"label": "   ", "scopes": ["erp"]},
        {"label": "x" * 101, "scopes": ["erp"]},
        {"scopes": ["erp"]},
        {"label": "x", "scopes": ["erp"], "tenant_id": str(uuid.uuid4())},
    ],
)
async def test_a_bad_token_request_is_refused_and_issues_nothing(api: httpx.AsyncClient, body: dict[str, Any]) -> None:
    _, operator = await new_tenant(api)
    before = (await api.get("/v1/tokens", headers=operator)).json()["items"]
    r = await api.post("/v1/tokens", headers=operator, json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json") and r.json()["errors"]
    assert (await api.get("/v1/tokens", headers=operator)).json()["items"] == before


async def test_a_revoked_token_is_refused_at_once_and_token_revoked_is_published(
    api: httpx.AsyncClient, settings: Settings
) -> None:
    tenant, operator = await new_tenant(api)
    made = (await api.post("/v1/tokens", headers=operator, json={"label": "Ops", "scopes": ["operator"]})).json()
    token = bearer(made["token"])
    assert (await api.get("/v1/tokens", headers=token)).status_code == 200
    assert (await api.delete(f"/v1/tokens/{made['id']}", headers=operator)).status_code == 204
    refused = await api.get("/v1/tokens", headers=token)
    assert refused.status_code == 401 and refused.json()["code"] == "token_revoked"
    [listed] = [t for t in (await api.get("/v1/tokens", headers=operator)).json()["items"] if t["id"] == made["id"]]
    assert listed["revoked_at"] is not None
    # Idempotent: revoking again changes nothing and publishes nothing more.
    assert (await api.delete(f"/v1/tokens/{made['id']}", headers=operator)).status_code == 204
    events = [e for e in await outbox(settings, "token.revoked") if e["data"]["token_id"] == made["id"]]
    assert len(events) == 1 and events[0]["tenant_id"] == tenant
    assert events[0]["data"]["expires_at"] is not None


async def test_a_token_the_koppel_command_issued_is_revoked_by_its_id(api: httpx.AsyncClient) -> None:
    tenant, operator = await new_tenant(api)
    cli_token = issue_token(TEST_SIGNING_KEY, tenant, ["operator"])
    jti = verify_token(TEST_SIGNING_KEY.public_entry(), cli_token).token_id
    assert (await api.get("/v1/tokens", headers=bearer(cli_token))).status_code == 200
    assert (await api.delete(f"/v1/tokens/{jti}", headers=operator)).status_code == 204
    r = await api.get("/v1/tokens", headers=bearer(cli_token))
    assert r.status_code == 401 and r.json()["code"] == "token_revoked"
    assert (await api.get("/v1/tokens", headers=operator)).status_code == 200  # the others still work


async def test_a_tenant_cannot_list_or_revoke_another_tenants_tokens(api: httpx.AsyncClient) -> None:
    _, operator_a = await new_tenant(api)
    _, operator_b = await new_tenant(api)
    made = (await api.post("/v1/tokens", headers=operator_a, json={"label": "A's ERP", "scopes": ["erp"]})).json()
    assert "A's ERP" not in (await api.get("/v1/tokens", headers=operator_b)).text
    r = await api.delete(f"/v1/tokens/{made['id']}", headers=operator_b)
    assert r.status_code == 404 and r.json()["code"] == "token_not_found"
    assert [t["revoked_at"] for t in (await api.get("/v1/tokens", headers=operator_a)).json()["items"]] == [None, None]
    # A's token still works (checked on a route that an erp token may use: its own tenant record).
    assert (await api.get("/v1/tenants/me", headers=bearer(made["token"]))).status_code == 200
    # An id that no token can have is not found either (and records nothing).
    for bad in ("not a token id!", "x" * 65):
        assert (await api.delete(f"/v1/tokens/{bad}", headers=operator_b)).status_code == 404
