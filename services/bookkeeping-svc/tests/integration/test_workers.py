"""Several workers, one Twinfield connection: a refused token is refreshed once, not once per
worker (each worker has its own cache and in-process lock; the row lock is what they share)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from bookkeeping_svc.service_layer.gateway import Gateway
from koppel_shared.service import Runtime

from .conftest import Sandbox, Service

pytestmark = pytest.mark.integration


async def test_two_workers_refreshing_a_refused_token_at_once_refresh_it_once(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    runtimes = [await Runtime.open("bookkeeping", service.settings, connect_broker=False) for _ in range(2)]
    gateways = [Gateway(rt, service.settings) for rt in runtimes]
    try:
        current = await gateways[0].access(tenant)
        before = sum(gw.refreshes for gw in gateways)
        twinfield.control("POST", "/tokens/expire", json={"client_id": "koppel-sandbox"})
        # Both workers were told the same token is no longer accepted (fault 354), at once.
        results = await asyncio.gather(*(gw.access(tenant, stale=current.token) for gw in gateways))
        assert sum(gw.refreshes for gw in gateways) - before == 1
        assert results[0].token == results[1].token != current.token
    finally:
        for gw in gateways:
            await gw.close()
        for rt in runtimes:
            await rt.close()
