"""Onboarding from the API and revocation on every service, through the real broker: the five
services' APIs and workers (in this process, each on its own fresh database), an admin token
creates a tenant whose operator token every service honours once ``tenant.registered`` reached
it, and a token revoked at sync-svc is refused by every service's API (401 ``token_revoked``)
within seconds, while the tenant's other tokens keep working."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from koppel_shared.auth import issue_admin_token
from koppel_shared.testing.fixtures import TEST_SIGNING_KEY, settings_for_test, unique_name
from koppel_shared.testing.service_checks import api_client, worker
from koppel_shared.testing.waiting import eventually

from .console_stack import SERVICES, _definition_and_settings, _remove_exchange, databases

pytestmark = pytest.mark.integration

# A route of each service that any operator token of a registered tenant may read.
PROBES = {
    "mandate": "/v1/mandates",
    "collection": "/v1/invoices",
    "sync": "/v1/tokens",
    "bookkeeping": "/v1/bookings",
    "notify": "/v1/webhook-endpoints",
}


@contextlib.asynccontextmanager
async def five_services() -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    prefix = unique_name("q") + "."
    try:
        async with databases(prefix) as urls, contextlib.AsyncExitStack() as stack:
            clients = {}
            for service in SERVICES:
                definition, settings_cls = _definition_and_settings(service)
                settings = settings_for_test(settings_cls, urls[service], prefix, known_tenants_only=True)
                await stack.enter_async_context(worker(definition, settings))
                clients[service] = await stack.enter_async_context(api_client(definition, settings))
            yield clients
    finally:
        await _remove_exchange(prefix)


async def _statuses(clients: dict[str, httpx.AsyncClient], token: str) -> dict[str, Any]:
    seen = {}
    for service, client in clients.items():
        r = await client.get(PROBES[service], headers={"Authorization": f"Bearer {token}"})
        seen[service] = r.status_code if r.status_code == 200 else (r.status_code, r.json().get("code"))
    return seen


async def test_a_token_revoked_at_sync_svc_is_refused_by_every_service_within_seconds() -> None:
    async with five_services() as clients:
        assert set(clients) == set(PROBES)
        sync = clients["sync"]
        admin = {"Authorization": f"Bearer {issue_admin_token(TEST_SIGNING_KEY, subject='test')}"}
        created = await sync.post("/v1/tenants", headers=admin, json={"name": "Acme BV"})
        assert created.status_code == 201, created.text
        operator = created.json()["operator_token"]
        everywhere_ok = dict.fromkeys(PROBES, 200)

        async def honoured_everywhere() -> bool:
            return await _statuses(clients, operator) == everywhere_ok

        await eventually(honoured_everywhere, within=20)  # tenant.registered reached every service
        made = await sync.post(
            "/v1/tokens",
            headers={"Authorization": f"Bearer {operator}"},
            json={"label": "Second operator", "scopes": ["operator"], "ttl_days": 1},
        )
        assert made.status_code == 201, made.text
        doomed = made.json()["token"]
        assert await _statuses(clients, doomed) == everywhere_ok

        revoked = await sync.delete(f"/v1/tokens/{made.json()['id']}", headers={"Authorization": f"Bearer {operator}"})
        assert revoked.status_code == 204
        # sync-svc refuses it at once; the others once token.revoked reached them.
        assert (await _statuses({"sync": sync}, doomed))["sync"] == (401, "token_revoked")
        everywhere_refused = dict.fromkeys(PROBES, (401, "token_revoked"))

        async def refused_everywhere() -> bool:
            return await _statuses(clients, doomed) == everywhere_refused

        await eventually(refused_everywhere, within=10)  # a second's refresh, plus the broker's hop
        assert await _statuses(clients, operator) == everywhere_ok  # the tenant's other token still works
