"""Revoked tokens on the request path: ``token.revoked`` through the real broker and the system
consumer's inbox makes the API refuse the token (401 ``token_revoked``) within seconds, and only
that token of that tenant; admin tokens reach admin routes only."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import pytest
from fastapi import APIRouter

from koppel_shared.auth import issue_admin_token, issue_token
from koppel_shared.events import new_event
from koppel_shared.events.system import TokenRevoked
from koppel_shared.messaging.inbox import InboxConsumer
from koppel_shared.messaging.ping import ping_consumer
from koppel_shared.revocations import RevocationList, remember_revocation
from koppel_shared.service import Runtime
from koppel_shared.testing.fixtures import TEST_SIGNING_KEY
from koppel_shared.testing.waiting import eventually
from koppel_shared.web.app import create_app
from koppel_shared.web.auth import AdminPrincipal, Principal

pytestmark = pytest.mark.integration


def _app(runtime: Runtime) -> httpx.AsyncClient:
    router = APIRouter()

    @router.get("/v1/whoami")
    async def whoami(principal: Principal) -> dict[str, str]:
        return {"tenant": str(principal.tenant_id)}

    @router.post("/v1/installation")
    async def installation(principal: AdminPrincipal) -> dict[str, str]:
        return {"subject": principal.subject}

    app = create_app(title="t", settings=runtime.settings, routers=[router])
    app.state.revocations = RevocationList(runtime.session_factory)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _token_with_id(tenant: uuid.UUID, jti: str) -> str:
    now = int(time.time())
    claims = {"iss": "koppel", "sub": "x", "tid": str(tenant), "scope": "erp", "iat": now, "exp": now + 600, "jti": jti}
    return jwt.encode(claims, TEST_SIGNING_KEY.private, algorithm="EdDSA", headers={"kid": TEST_SIGNING_KEY.kid})


async def test_a_revoked_token_is_refused_within_seconds_and_only_that_token(runtime: Runtime) -> None:
    tenant = uuid.uuid4()
    revoked, kept = issue_token(TEST_SIGNING_KEY, tenant), issue_token(TEST_SIGNING_KEY, tenant)
    jti = jwt.decode(revoked, options={"verify_signature": False})["jti"]
    # Another tenant's token under the same id: a tenant's revocation never reaches it.
    other_tenants = _token_with_id(uuid.uuid4(), jti)
    async with _app(runtime) as client:
        for token in (revoked, kept, other_tenants):
            assert (await client.get("/v1/whoami", headers=_bearer(token))).status_code == 200
        consumer = InboxConsumer(
            runtime.broker, runtime.session_factory, runtime.queue("system", ping_consumer().bindings),
            ping_consumer().handlers, max_attempts=3,
        )  # fmt: skip
        await consumer.start()
        try:
            await runtime.broker.publish(new_event(TokenRevoked(token_id=jti), tenant_id=tenant))

            async def refused() -> bool:
                answer = await client.get("/v1/whoami", headers=_bearer(revoked))
                return answer.status_code == 401 and answer.json()["code"] == "token_revoked"

            await eventually(refused, within=10)
        finally:
            await consumer.stop()
        assert (await client.get("/v1/whoami", headers=_bearer(kept))).status_code == 200
        assert (await client.get("/v1/whoami", headers=_bearer(other_tenants))).status_code == 200


async def test_a_revocation_written_after_the_list_was_read_is_seen_at_the_next_refresh(runtime: Runtime) -> None:
    revocations = RevocationList(runtime.session_factory)
    tenant = uuid.uuid4()
    assert not await revocations.is_revoked(tenant, "late")
    async with runtime.uow() as uow:
        assert await remember_revocation(uow.session, tenant, "late")
        assert not await remember_revocation(uow.session, tenant, "late")  # idempotent
        await uow.commit()

    async def seen() -> bool:
        return await revocations.is_revoked(tenant, "late")

    await eventually(seen, within=5)
    assert not await revocations.is_revoked(uuid.uuid4(), "late")


async def test_an_admin_token_reaches_admin_routes_only_and_can_be_revoked(runtime: Runtime) -> None:
    admin = issue_admin_token(TEST_SIGNING_KEY, subject="ops")
    tenant_token = issue_token(TEST_SIGNING_KEY, uuid.uuid4(), ["operator"])
    async with _app(runtime) as client:
        tenant_route = await client.get("/v1/whoami", headers=_bearer(admin))
        assert tenant_route.status_code == 403 and tenant_route.json()["code"] == "insufficient_scope"
        admin_route = await client.post("/v1/installation", headers=_bearer(admin))
        assert admin_route.status_code == 200 and admin_route.json() == {"subject": "admin:ops"}
        refused = await client.post("/v1/installation", headers=_bearer(tenant_token))
        assert refused.status_code == 403 and refused.json()["code"] == "insufficient_scope"

        async with runtime.uow() as uow:
            jti = jwt.decode(admin, options={"verify_signature": False})["jti"]
            await remember_revocation(uow.session, None, jti)  # installation-wide: no tenant
            await uow.commit()

        async def refused_now() -> bool:
            answer = await client.post("/v1/installation", headers=_bearer(admin))
            return answer.status_code == 401 and answer.json()["code"] == "token_revoked"

        await eventually(refused_now, within=5)
