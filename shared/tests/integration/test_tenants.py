"""The tenant directory on the request path: a token is honoured only for a registered tenant,
learned from ``tenant.registered`` through the real broker and the system consumer's inbox."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import APIRouter

from koppel_shared.auth import issue_token
from koppel_shared.events import new_event
from koppel_shared.events.system import TenantRegistered
from koppel_shared.messaging.inbox import InboxConsumer
from koppel_shared.messaging.ping import ping_consumer
from koppel_shared.service import Runtime
from koppel_shared.tenants import TenantDirectory, remember_tenant
from koppel_shared.testing.fixtures import TEST_SIGNING_KEY
from koppel_shared.testing.waiting import eventually
from koppel_shared.web.app import create_app
from koppel_shared.web.auth import Principal

pytestmark = pytest.mark.integration


def _app(runtime: Runtime, known_tenants_only: bool) -> httpx.AsyncClient:
    router = APIRouter()

    @router.get("/v1/whoami")
    async def whoami(principal: Principal) -> dict[str, str]:
        return {"tenant": str(principal.tenant_id)}

    settings = runtime.settings.model_copy(update={"known_tenants_only": known_tenants_only})
    app = create_app(title="t", settings=settings, routers=[router])
    app.state.tenants = TenantDirectory(runtime.session_factory)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def _auth(runtime: Runtime, tenant: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(TEST_SIGNING_KEY, tenant)}"}


async def test_a_token_of_an_unregistered_tenant_is_refused_until_the_tenant_is_registered(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("koppel_shared.tenants.UNKNOWN_RECHECK_SECONDS", 0.0)
    tenant = uuid.uuid4()
    async with _app(runtime, known_tenants_only=True) as client:
        refused = await client.get("/v1/whoami", headers=_auth(runtime, tenant))
        assert refused.status_code == 401
        assert refused.json()["code"] == "unknown_tenant"

        consumer = InboxConsumer(
            runtime.broker, runtime.session_factory, runtime.queue("system", ping_consumer().bindings),
            ping_consumer().handlers, max_attempts=3,
        )  # fmt: skip
        await consumer.start()
        try:
            await runtime.broker.publish(new_event(TenantRegistered(name="Bakkerij"), tenant_id=tenant))

            async def honoured() -> bool:
                return (await client.get("/v1/whoami", headers=_auth(runtime, tenant))).status_code == 200

            await eventually(honoured, within=15)
        finally:
            await consumer.stop()
        # Another tenant is still refused: registering one opens nothing else.
        assert (await client.get("/v1/whoami", headers=_auth(runtime, uuid.uuid4()))).status_code == 401


async def test_an_unknown_tenant_is_asked_again_only_after_the_recheck_interval(runtime: Runtime) -> None:
    directory = TenantDirectory(runtime.session_factory)
    tenant = uuid.uuid4()
    assert not await directory.is_known(tenant)
    async with runtime.uow() as uow:
        await remember_tenant(uow.session, tenant, "Late")
        await uow.commit()
    assert not await directory.is_known(tenant)  # the refusal is remembered for a few seconds
    assert await TenantDirectory(runtime.session_factory).is_known(tenant)


async def test_the_check_is_off_only_where_settings_say_so(runtime: Runtime) -> None:
    async with _app(runtime, known_tenants_only=False) as client:
        assert (await client.get("/v1/whoami", headers=_auth(runtime, uuid.uuid4()))).status_code == 200
