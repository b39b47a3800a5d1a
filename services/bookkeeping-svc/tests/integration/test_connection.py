"""The Twinfield connection: OAuth connect, token refresh, lost consent, fair-use limits, and
customer bank/mandate updates."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from koppel_shared.events.mandate import MandateSigned
from koppel_shared.testing.waiting import eventually
from twinfield_sandbox.testing import OFFICE, ORG

from .conftest import Sandbox, Service
from .test_bookings import paid, wait_status

pytestmark = pytest.mark.integration


async def stored_connection(service: Service, tenant: uuid.UUID) -> dict[str, object]:
    engine = create_async_engine(service.settings.database_url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(sa.text("SELECT * FROM twinfield_connections WHERE tenant_id = :t"), {"t": tenant})
            ).first()
            assert row is not None
            return dict(row._mapping)
    finally:
        await engine.dispose()


async def test_operator_connects_through_twinfield_consent_and_the_refresh_token_is_stored_encrypted(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    headers = service.headers(tenant)
    reply = await service.api.put(
        "/v1/twinfield/connection",
        json={"office": OFFICE, "cross_accounts": {"direct_debit": "1105", "paylink": "1110"}, "freetext_field": 1},
        headers=headers,
    )
    assert reply.status_code == 200 and reply.json()["status"] == "not_connected"
    reply = await service.api.post("/v1/twinfield/connect", headers=headers)
    assert reply.status_code == 200, reply.text
    authorize = urlsplit(reply.json()["authorize_url"])
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    assert query["response_type"] == "code" and "offline_access" in query["scope"] and query["nonce"]
    # No PKCE: a code-flow client at Twinfield that sends a code_verifier gets invalid_grant.
    assert "code_challenge" not in query and "code_challenge_method" not in query

    # The operator's browser: the consent page, then Allow.
    page = twinfield.http.get(authorize.path, params=query)
    assert page.status_code == 200 and "Allow" in page.text
    consent = twinfield.http.post(
        "/auth/authentication/connect/authorize/consent",
        data={
            "client_id": query["client_id"],
            "redirect_uri": query["redirect_uri"],
            "scope": query["scope"],
            "state": query["state"],
            "nonce": query["nonce"],
            "organisation": ORG,
            "user": "APIUSER",
            "decision": "allow",
        },
    )
    assert consent.status_code == 302
    back = urlsplit(consent.headers["location"])
    assert back.path == "/v1/twinfield/oauth/callback"
    callback = await service.api.get(back.path + "?" + back.query)  # no tenant token: the state says who
    assert callback.status_code == 200, callback.text

    status = (await service.api.get("/v1/twinfield/connection", headers=headers)).json()
    assert status["status"] == "connected" and status["organisation"] == ORG and status["office"] == OFFICE
    row = await stored_connection(service, tenant)
    refresh = str(row["refresh_token"])
    assert refresh and refresh.startswith("gAAAA")  # Fernet, never the token itself
    replay = await service.api.get(back.path + "?" + back.query)
    assert replay.status_code == 400 and replay.json()["code"] == "invalid_oauth_state"
    forged = await service.api.get("/v1/twinfield/oauth/callback", params={"code": "x", "state": "abc.def"})
    assert forged.status_code == 400

    # and it books, with our reference in freetext1
    twinfield.seed_invoice("1001", "F2025-0500", 2500)
    await service.publish(paid("F2025-0500", 2500, tx="TX-OAUTH-1"), tenant)
    await wait_status(service, tenant, "matched")
    (memo,) = twinfield.memos()
    assert "TX-OAUTH-1" in str(memo["freetext"])


async def test_expired_access_token_is_refreshed_and_the_booking_goes_through(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    twinfield.seed_invoice("1001", "F2025-0600", 12100)
    await service.publish(paid("F2025-0600"), tenant)
    await wait_status(service, tenant, "matched")
    before = await stored_connection(service, tenant)

    expired = twinfield.control("POST", "/tokens/expire", json={"client_id": "koppel-sandbox"})
    assert expired["expired"] >= 1
    twinfield.seed_invoice("1001", "F2025-0601", 12100)
    await service.publish(paid("F2025-0601"), tenant)

    async def both_matched() -> bool:
        reply = await service.api.get("/v1/bookings", params={"status": "booked"}, headers=service.headers(tenant))
        return len(reply.json()["items"]) == 2

    await eventually(both_matched, within=20)
    after = await stored_connection(service, tenant)
    assert after["access_token"] != before["access_token"]
    assert after["status"] == "connected"
    assert len(twinfield.memos()) == 2


async def test_429_is_honoured_and_the_request_is_sent_again_after_retry_after(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    twinfield.seed_invoice("1001", "F2025-0700", 12100)
    twinfield.control(
        "POST", "/faults", json={"operation": "transactions", "kind": "rate_limit", "retry_after": 1, "count": 2}
    )
    await service.publish(paid("F2025-0700"), tenant)
    booking = await wait_status(service, tenant, "matched")
    assert booking["more_info"] is None
    assert twinfield.control("GET", "/faults")[0]["fired"] == 2
    assert len(twinfield.memos()) == 1


async def test_lost_consent_pauses_bookings_and_reconnecting_resumes_them(service: Service, twinfield: Sandbox) -> None:
    tenant = uuid.uuid4()
    headers = service.headers(tenant)
    await service.connect(tenant, twinfield)
    twinfield.control("POST", "/consent/revoke", json={"client_id": "koppel-sandbox", "organisation": ORG})
    twinfield.seed_invoice("1001", "F2025-0800", 12100)
    twinfield.seed_invoice("1001", "F2025-0801", 3000)
    await service.publish(paid("F2025-0800"), tenant)

    paused = await wait_status(service, tenant, "paused")
    assert paused["more_info"]["code"] == "auth_lost" and paused["more_info"]["hint"]
    status = (await service.api.get("/v1/twinfield/connection", headers=headers)).json()
    assert status["status"] == "consent_lost" and "reconnect" in status["reason"]
    # While consent is lost, new payments wait with them instead of failing one by one.
    await service.publish(paid("F2025-0801", 3000), tenant)

    async def two_paused() -> bool:
        reply = await service.api.get("/v1/bookings", headers=headers)
        return [b["status"] for b in reply.json()["items"]] == ["paused", "paused"]

    await eventually(two_paused, within=10)
    assert twinfield.memos() == []

    reply = await service.api.post(
        "/v1/twinfield/connection/refresh-token", json={"refresh_token": twinfield.refresh_token()}, headers=headers
    )
    assert reply.status_code == 200 and reply.json()["status"] == "connected"

    async def both_matched() -> bool:
        reply = await service.api.get("/v1/bookings", headers=headers)
        return [b["status"] for b in reply.json()["items"]] == ["matched", "matched"]

    await eventually(both_matched, within=20)
    assert len(twinfield.memos()) == 2


async def test_signed_mandate_puts_bank_account_and_collect_mandate_on_the_customer(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    twinfield.seed_customer("1001", "info@dekorf.nl")
    now = datetime.now(UTC)
    signed = MandateSigned(
        mandate_id=str(uuid.uuid4()),
        mandate_number="MNDT-2025-0001",
        customer_number="1001",
        status="active",
        scheme="CORE",
        name="J. de Korf",
        company_name="Bakkerij De Korf",
        email="info@dekorf.nl",
        iban="NL91ABNA0417164300",
        bic="ABNANL2A",
        signature_date=date(2025, 3, 1),
        version=2,
        updated_at=now,
    )
    await service.publish(signed, tenant)

    def customer() -> dict[str, object]:
        return dict(twinfield.control("GET", f"/offices/{OFFICE}/customers/1001"))

    async def updated() -> bool:
        return "NL91ABNA0417164300" in str(customer())

    await eventually(updated, within=15)
    record = str(customer())
    assert "MNDT-2025-0001" in record and "ABNANL2A" in record


def test_sandbox_login_is_reachable(twinfield: Sandbox) -> None:
    assert httpx.get(twinfield.base_url + "/healthz").status_code == 200
