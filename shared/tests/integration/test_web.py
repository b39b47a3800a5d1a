"""The app factory: health, readiness, metrics, problem+json errors, tenant isolation."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import APIRouter
from pydantic import BaseModel, Field

from koppel_shared.auth import SigningKey, issue_service_token, issue_token
from koppel_shared.deps import Internal, Principal
from koppel_shared.settings import KoppelSettings
from koppel_shared.testing.fixtures import TEST_PUBLIC_KEYS, TEST_SIGNING_KEY, settings_for_test
from koppel_shared.web.app import create_app
from koppel_shared.web.errors import Problem

pytestmark = pytest.mark.integration

notes: dict[tuple[uuid.UUID, str], str] = {}
router = APIRouter()


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=20)


@router.put("/v1/notes/{note_id}")
async def put_note(note_id: str, body: NoteIn, principal: Principal) -> dict[str, str]:
    notes[(principal.tenant_id, note_id)] = body.text
    return {"id": note_id, "text": body.text}


@router.get("/v1/notes/{note_id}")
async def get_note(note_id: str, principal: Principal) -> dict[str, str]:
    text = notes.get((principal.tenant_id, note_id))
    if text is None:  # another tenant's note is indistinguishable from a missing one
        raise Problem(404, "note_not_found", f"no note {note_id}")
    return {"id": note_id, "text": text}


@router.get("/internal/v1/whoami")
async def whoami(principal: Internal) -> dict[str, str]:
    return {"tenant": str(principal.tenant_id), "subject": principal.subject}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("secret internals")


@pytest.fixture
def settings(database_url: str) -> KoppelSettings:
    return settings_for_test(KoppelSettings, database_url, "web.")


@pytest.fixture
async def client(settings: KoppelSettings):
    async with app_client(settings) as c:
        yield c


@contextlib.asynccontextmanager
async def app_client(settings: KoppelSettings) -> AsyncIterator[httpx.AsyncClient]:
    async def failing_broker() -> None:
        raise ConnectionError("not connected")

    async def ok() -> None:
        return None

    app = create_app(
        title="t", settings=settings, routers=[router], ready_checks={"database": ok, "broker": failing_broker}
    )
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


def bearer(settings: KoppelSettings, tenant: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(TEST_SIGNING_KEY, tenant)}"}


async def test_a_token_for_tenant_a_cannot_read_tenant_b_data(client: httpx.AsyncClient, settings: KoppelSettings):
    a, b = uuid.uuid4(), uuid.uuid4()
    assert (await client.put("/v1/notes/n1", json={"text": "of a"}, headers=bearer(settings, a))).status_code == 200
    assert (await client.get("/v1/notes/n1", headers=bearer(settings, a))).json()["text"] == "of a"
    refused = await client.get("/v1/notes/n1", headers=bearer(settings, b))
    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"
    assert "of a" not in refused.text


async def test_missing_or_forged_token_is_401_problem(client: httpx.AsyncClient):
    missing = await client.get("/v1/notes/n1")
    assert missing.status_code == 401 and missing.json()["code"] == "unauthorized"
    # Signed by a key nobody listed, and by another key under the listed kid.
    for key in (SigningKey.generate("other"), SigningKey.generate(TEST_SIGNING_KEY.kid)):
        forged = issue_token(key, uuid.uuid4())
        bad = await client.get("/v1/notes/n1", headers={"Authorization": f"Bearer {forged}"})
        assert bad.status_code == 401 and bad.json()["code"] == "invalid_token"


async def test_hs256_token_keyed_with_the_public_key_is_401(client: httpx.AsyncClient):
    public = TEST_SIGNING_KEY.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    claims = {"iss": "koppel", "sub": "x", "tid": str(uuid.uuid4()), "scope": "operator", "iat": 0, "exp": 2**40}
    for secret in (public, TEST_PUBLIC_KEYS.encode()):
        forged = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": TEST_SIGNING_KEY.kid})
        bad = await client.get("/v1/notes/n1", headers={"Authorization": f"Bearer {forged}"})
        assert bad.status_code == 401 and bad.json()["code"] == "invalid_token"
        assert "EdDSA" in bad.json()["detail"]


async def test_rotation_by_kid(database_url: str):
    new = SigningKey.generate("next")
    tenant = uuid.uuid4()
    old_token, new_token = issue_token(TEST_SIGNING_KEY, tenant), issue_token(new, tenant)
    both = settings_for_test(
        KoppelSettings, database_url, "web.", token_public_keys=f"{TEST_PUBLIC_KEYS},{new.public_entry()}"
    )
    async with app_client(both) as c:
        assert (await c.put("/v1/notes/r", json={"text": "old"}, headers=_auth(old_token))).status_code == 200
        got = await c.get("/v1/notes/r", headers=_auth(new_token))
        assert got.status_code == 200 and got.json()["text"] == "old"
    only_new = settings_for_test(KoppelSettings, database_url, "web.", token_public_keys=new.public_entry())
    async with app_client(only_new) as c:
        assert (await c.get("/v1/notes/r", headers=_auth(new_token))).status_code == 200
        dropped = await c.get("/v1/notes/r", headers=_auth(old_token))
        assert dropped.status_code == 401 and dropped.json()["code"] == "invalid_token"


async def test_service_token_acts_for_the_tenant_it_names_and_only_internally(client: httpx.AsyncClient):
    token, tenant = issue_service_token(TEST_SIGNING_KEY, "mandate"), uuid.uuid4()
    ok = await client.get("/internal/v1/whoami", headers={**_auth(token), "X-Koppel-Tenant": str(tenant)})
    assert ok.status_code == 200 and ok.json() == {"tenant": str(tenant), "subject": "service:mandate"}
    unnamed = await client.get("/internal/v1/whoami", headers=_auth(token))
    assert unnamed.status_code == 401 and "X-Koppel-Tenant" in unnamed.json()["detail"]
    # Acting for any tenant it names, a service token is no key to the tenants' own APIs.
    not_internal = await client.get("/v1/notes/n1", headers={**_auth(token), "X-Koppel-Tenant": str(tenant)})
    assert not_internal.status_code == 403 and not_internal.json()["code"] == "insufficient_scope"
    operator = issue_token(TEST_SIGNING_KEY, tenant, ["operator"])
    refused = await client.get("/internal/v1/whoami", headers=_auth(operator))
    assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_validation_error_names_field_and_rule(client: httpx.AsyncClient, settings: KoppelSettings):
    r = await client.put("/v1/notes/n2", json={"text": ""}, headers=bearer(settings, uuid.uuid4()))
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "validation_error"
    assert body["errors"][0]["field"] == "text" and body["errors"][0]["rule"] == "string_too_short"


async def test_unexpected_error_is_500_problem_without_internals(client: httpx.AsyncClient):
    r = await client.get("/boom", headers={"X-Request-ID": "req-123"})
    assert r.status_code == 500
    assert r.json()["code"] == "internal_error" and r.json()["correlation_id"] == "req-123"
    assert "secret internals" not in r.text
    assert r.headers["x-request-id"] == "req-123"


async def test_health_ready_and_metrics(client: httpx.AsyncClient):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "ok" and "failing" in ready.json()["checks"]["broker"]
    metrics = await client.get("/metrics")
    assert "koppel_http_requests_total" in metrics.text


async def test_log_lines_carry_correlation_and_tenant_id(settings: KoppelSettings, capsys: pytest.CaptureFixture[str]):
    import json

    from koppel_shared.logging import configure_logging, get_logger

    configure_logging("test-svc", "INFO", json=True)
    log_router = APIRouter()

    @log_router.get("/v1/log-something")
    async def log_something(principal: Principal) -> dict[str, str]:
        get_logger("t").info("something.happened")
        return {"ok": "yes"}

    app = create_app(title="t", settings=settings, routers=[log_router])
    tenant = uuid.uuid4()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/v1/log-something", headers={**bearer(settings, tenant), "X-Request-ID": "corr-42"})
    assert r.status_code == 200
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    line = next(x for x in lines if x["event"] == "something.happened")
    assert line["correlation_id"] == "corr-42" and line["tenant_id"] == str(tenant) and line["service"] == "test-svc"


@pytest.mark.parametrize(
    "body",
    [b'{"text": "a\\u0000b"}', b'{"text": "\\ud83d"}', b'{"text": "x\\udc00"}'],
    ids=["nul", "lone-high-surrogate", "lone-low-surrogate"],
)
async def test_text_no_field_can_hold_is_refused_before_any_route_runs(
    client: httpx.AsyncClient, settings: KoppelSettings, body: bytes
):
    r = await client.put(
        "/v1/notes/n9", content=body, headers={**bearer(settings, uuid.uuid4()), "content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid_characters"
    assert all(key[1] != "n9" for key in notes)


async def test_emoji_and_other_real_text_still_pass(client: httpx.AsyncClient, settings: KoppelSettings):
    r = await client.put(
        "/v1/notes/n10", content=b'{"text": "caf\\u00e9 \\ud83d\\ude00"}',
        headers={**bearer(settings, uuid.uuid4()), "content-type": "application/json"},
    )  # fmt: skip
    assert r.status_code == 200 and r.json()["text"] == "café 😀"


async def test_nul_in_the_query_string_is_refused(client: httpx.AsyncClient):
    r = await client.get("/v1/notes/n1?x=%00")
    assert r.status_code == 422 and r.json()["code"] == "invalid_characters"
