"""No SSRF: with production rules (https only, no private networks allowed) every URL that points
— literally or through DNS — at a private, loopback, link-local or otherwise internal address is
refused when saved, and a name that resolves somewhere internal at delivery time (DNS rebinding)
is not called."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from notify_support import Stack, mandate_signed, notify_settings, running_stack, wait_until

from notify_svc.adapters.network import system_resolver

pytestmark = pytest.mark.integration

PUBLIC = "93.184.216.34"


class FakeDns:
    """Answers for the names in ``names``; asks the system for the rest (e.g. localhost)."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}

    async def __call__(self, host: str, port: int) -> list[str]:
        if host in self.names:
            return list(self.names[host])
        return await system_resolver(host, port)


DNS = FakeDns()


@pytest.fixture(scope="module")
async def stack(database_url: str, broker_prefix: str, cleanup_exchange: None) -> AsyncIterator[Stack]:
    settings = notify_settings(database_url, broker_prefix, webhook_allow_http=None, webhook_allowed_networks=[])
    async with running_stack(settings, resolver=DNS) as s:
        yield s


async def create(stack: Stack, tenant: uuid.UUID, url: str) -> Any:
    return await stack.client.post("/v1/webhook-endpoints", json={"url": url}, headers=stack.headers(tenant))


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://127.8.9.10/hook",
        "https://10.0.0.5/hook",
        "https://172.16.4.4/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "https://100.64.0.1/hook",  # carrier-grade NAT
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::]/hook",
        "https://[fe80::1]/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
        "https://[::ffff:a9fe:a9fe]/hook",  # IPv4-mapped metadata address, hex form
        "https://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
        "https://[2002:c0a8:101::1]/hook",  # 6to4 of 192.168.1.1
        "https://localhost/hook",  # a name resolving to loopback
        "https://2130706433/hook",  # 127.0.0.1 written as one number
        "https://0x7f.1/hook",  # 127.0.0.1 in hex shorthand
        "https://internal.example/hook",  # resolves to a private address
        "https://mixed.example/hook",  # one public and one private address
        "https://nowhere.invalid/hook",  # does not resolve at all
    ],
)
async def test_urls_pointing_at_internal_addresses_are_refused(stack: Stack, url: str) -> None:
    DNS.names.update({"internal.example": ["10.1.2.3"], "mixed.example": [PUBLIC, "10.0.0.1"]})
    r = await create(stack, uuid.uuid4(), url)
    assert r.status_code == 422, r.text
    assert r.json()["code"] in ("url_forbidden_address", "url_unresolvable"), r.json()


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://public.example/hook", "url_not_https"),
        ("https://user:pw@public.example/hook", "url_credentials"),
        ("gopher://public.example/", "url_scheme"),
        ("https:///nohost", "url_invalid"),
    ],
)
async def test_urls_of_the_wrong_shape_are_refused(stack: Stack, url: str, code: str) -> None:
    DNS.names["public.example"] = [PUBLIC]
    r = await create(stack, uuid.uuid4(), url)
    assert r.status_code == 422
    assert r.json()["code"] == code


async def test_a_public_https_url_is_accepted_and_an_update_is_checked_too(stack: Stack) -> None:
    DNS.names["public.example"] = [PUBLIC, "2606:2800:220:1:248:1893:25c8:1946"]
    tenant = uuid.uuid4()
    r = await create(stack, tenant, "https://public.example/hook")
    assert r.status_code == 201, r.text
    r = await stack.client.patch(
        f"/v1/webhook-endpoints/{r.json()['id']}", json={"url": "https://[::1]/x"}, headers=stack.headers(tenant)
    )
    assert r.status_code == 422


async def test_a_name_that_resolves_to_an_internal_address_at_delivery_time_is_not_called(stack: Stack) -> None:
    DNS.names["rebind.example"] = [PUBLIC]
    tenant = uuid.uuid4()
    r = await create(stack, tenant, "https://rebind.example/hook")
    assert r.status_code == 201, r.text
    endpoint_id = r.json()["id"]
    DNS.names["rebind.example"] = ["127.0.0.1"]  # the attacker's DNS now says loopback
    await stack.publish(mandate_signed(tenant))

    async def attempted() -> bool:
        r = await stack.client.get(f"/v1/deliveries?endpoint={endpoint_id}", headers=stack.headers(tenant))
        data = r.json()["data"]
        return bool(data and data[0]["attempt_log"])

    await wait_until(attempted)
    r = await stack.client.get(f"/v1/deliveries?endpoint={endpoint_id}", headers=stack.headers(tenant))
    attempt = r.json()["data"][0]["attempt_log"][0]
    assert attempt["status_code"] is None
    assert "refused" in attempt["error"]
    assert "loopback" in attempt["error"]
