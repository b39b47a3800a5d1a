"""Invites nobody signs expire: the mandate says so, the ERP hears it, Twikey withdraws the invite."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from koppel_shared.service import Runtime
from mandate_svc.service_layer.mandates import expire_unsigned, utcnow
from mandate_svc.settings import Settings

from .conftest import Tap, TenantCtx
from .test_api import body, create

pytestmark = pytest.mark.integration


async def test_an_invite_not_signed_in_time_expires_and_is_withdrawn_at_twikey(
    service: httpx.AsyncClient, settings: Settings, tenant: TenantCtx, tap: Tap
) -> None:
    old = (await create(service, tenant, body())).json()
    runtime = await Runtime.open("mandate", settings, connect_broker=False)
    try:
        async with runtime.uow() as uow:  # a day too early: nothing happens
            assert await expire_unsigned(uow, utcnow() + timedelta(days=29), timedelta(days=30)) == 0
            await uow.commit()
        async with runtime.uow() as uow:
            assert await expire_unsigned(uow, utcnow() + timedelta(days=31), timedelta(days=30)) >= 1
            await uow.commit()
    finally:
        await runtime.close()

    now = (await service.get(f"/v1/mandates/{old['id']}", headers=tenant.headers)).json()
    assert now["status"] == "expired" and "not signed within 30 days" in now["reason"]
    event = await tap.wait_for("mandate.expired", mandate_id=old["id"])
    assert event.data["version"] == old["version"] + 1
    command = await tap.wait_for("sync.mandate_action_requested", mandate_number=old["mandate_number"], action="cancel")
    assert command.tenant_id is not None and str(command.tenant_id) == tenant.id
    # An expired mandate is final: a second sweep changes nothing.
    runtime = await Runtime.open("mandate", settings, connect_broker=False)
    try:
        async with runtime.uow() as uow:
            await expire_unsigned(uow, utcnow() + timedelta(days=60), timedelta(days=30))
            await uow.commit()
    finally:
        await runtime.close()
    assert len(tap.of("mandate.expired", mandate_id=old["id"])) == 1
