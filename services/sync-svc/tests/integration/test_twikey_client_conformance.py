"""sync-svc's Twikey client against the sandbox where Twikey's description is specific: the bulk
status array with its 409 while processing, a session refused with a bare 401, documented
not-found codes read as "not there"."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from koppel_shared.testing.serving import Served
from sync_svc.adapters.twikey_client import Credentials, RetryPolicy, SessionCache, TwikeyClient

from .conftest import Tenant

pytestmark = pytest.mark.integration


@pytest.fixture
async def twikey(tenant: Tenant, sandbox: Served) -> AsyncIterator[TwikeyClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        credentials = Credentials(str(tenant.tenant_id), f"{sandbox.base}/creditor", tenant.api_key)
        yield TwikeyClient(http, credentials, SessionCache(), RetryPolicy(attempts=2, initial=0.01))


async def test_bulk_status_is_none_while_processing_then_the_array_of_results(
    tenant: Tenant, twikey: TwikeyClient
) -> None:
    number = await tenant.signed_mandate()
    items = [{"mndtId": number, "message": "Invoice 1", "amount": 12.5, "ref": "BULK-1"}, {"mndtId": "NOPE"}]
    batch = (await twikey.call("POST", "/transaction/bulk", json=items)).json()["batchId"]
    assert await twikey.bulk_status(batch) is None  # 409: still processing
    await tenant.control.post("/clock/advance", json={"seconds": 2})
    results = await twikey.bulk_status(batch)
    assert results is not None
    assert [(r["ref"], r["mndtId"], r["status"]) for r in results] == [
        ("BULK-1", number, "ok"), (None, "NOPE", "error")
    ]  # fmt: skip


async def test_a_session_refused_with_a_bare_401_is_renewed_and_the_call_goes_through(
    tenant: Tenant, twikey: TwikeyClient
) -> None:
    number = await tenant.signed_mandate()
    assert (await twikey.mandate_detail(number)) is not None  # logged in
    await tenant.control.post(f"/creditors/{tenant.api_key}/sessions/expire")
    found = await twikey.mandate_detail(number)
    assert found is not None and found.state == "SIGNED"


async def test_unknown_pay_link_refs_and_transaction_refs_are_not_there(twikey: TwikeyClient) -> None:
    assert await twikey.paylink_by_ref("NO-SUCH-REF") is None
    assert await twikey.transaction_by_ref("NO-SUCH-REF") is None
