"""What the Twinfield settings form chooses from and how a choice is checked: the offices and an
office's general ledger accounts read from Twinfield (the sandbox over HTTP), PUT refusing an
office or account Twinfield does not have, and the connection's cluster and lost consent."""

from __future__ import annotations

import uuid

import pytest

from twinfield_sandbox.testing import OFFICE, ORG

from .conftest import Sandbox, Service

pytestmark = pytest.mark.integration

SECOND = "NLA000002"


async def connect_without_settings(service: Service, twinfield: Sandbox, tenant: uuid.UUID) -> None:
    """Consent first, office later: the order the console's form goes in."""
    reply = await service.api.post(
        "/v1/twinfield/connection/refresh-token",
        json={"refresh_token": twinfield.refresh_token()},
        headers=service.headers(tenant),
    )
    assert reply.status_code == 200 and reply.json()["status"] == "connected", reply.text
    assert reply.json()["office"] is None


async def test_offices_and_each_offices_own_accounts_are_read_from_twinfield(
    service: Service, twinfield: Sandbox
) -> None:
    twinfield.control("POST", "/offices", json={"organisation": ORG, "code": SECOND, "name": "Tweede BV"})
    twinfield.control("POST", f"/offices/{SECOND}/accounts", json={"code": "1120", "name": "Kruisposten", "type": "BAS"})
    tenant = uuid.uuid4()
    headers = service.headers(tenant)
    await connect_without_settings(service, twinfield, tenant)

    offices = await service.api.get("/v1/twinfield/offices", headers=headers)
    assert offices.status_code == 200, offices.text
    assert {(o["code"], o["name"]) for o in offices.json()["items"]} >= {
        (OFFICE, "Koppel Demo BV"),
        (SECOND, "Tweede BV"),
    }

    first = await service.api.get("/v1/twinfield/accounts", params={"office": OFFICE}, headers=headers)
    assert first.status_code == 200, first.text
    by_code = {a["code"]: a for a in first.json()["items"]}
    assert by_code["1300"] == {"code": "1300", "name": "Debiteuren", "kind": "balance"}
    assert by_code["8000"]["kind"] == "profit_and_loss"
    assert "1120" not in by_code and "BAS" not in by_code and "PNL" not in by_code
    second = await service.api.get("/v1/twinfield/accounts", params={"office": SECOND}, headers=headers)
    assert "1120" in {a["code"] for a in second.json()["items"]}


async def test_look_ups_before_connect_or_for_another_office_are_refused(service: Service, twinfield: Sandbox) -> None:
    tenant = uuid.uuid4()
    headers = service.headers(tenant)
    before = await service.api.get("/v1/twinfield/offices", headers=headers)
    assert (before.status_code, before.json()["code"]) == (409, "twinfield_not_connected")
    await connect_without_settings(service, twinfield, tenant)
    other = await service.api.get("/v1/twinfield/accounts", params={"office": "NLA999999"}, headers=headers)
    assert (other.status_code, other.json()["code"]) == (404, "twinfield_office_not_found")
    missing = await service.api.get("/v1/twinfield/accounts", headers=headers)
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "office"
    odd = await service.api.get("/v1/twinfield/accounts", params={"office": "<office/>"}, headers=headers)
    assert odd.status_code == 422


async def test_put_refuses_an_office_or_account_twinfield_does_not_have_and_changes_nothing(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    headers = service.headers(tenant)
    await service.connect(tenant, twinfield)
    before = (await service.api.get("/v1/twinfield/connection", headers=headers)).json()

    refused = await service.api.put(
        "/v1/twinfield/connection",
        json={"office": OFFICE, "debtor_account": "1399", "cross_accounts": {"direct_debit": "1105", "paylink": "8000"}},
        headers=headers,
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "validation_error"
    assert [(e["field"], e["rule"]) for e in refused.json()["errors"]] == [
        ("debtor_account", "twinfield_account_exists"),
        ("cross_accounts.paylink", "twinfield_balance_account"),
    ]
    elsewhere = await service.api.put("/v1/twinfield/connection", json={"office": "NLA999999"}, headers=headers)
    assert elsewhere.status_code == 422
    assert [(e["field"], e["rule"]) for e in elsewhere.json()["errors"]] == [("office", "twinfield_office_exists")]
    after = (await service.api.get("/v1/twinfield/connection", headers=headers)).json()
    assert after == before


async def test_an_account_just_added_in_twinfield_is_accepted_though_the_list_was_read_before(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    headers = service.headers(tenant)
    await service.connect(tenant, twinfield)
    listed = await service.api.get("/v1/twinfield/accounts", params={"office": OFFICE}, headers=headers)
    assert "1120" not in {a["code"] for a in listed.json()["items"]}
    twinfield.control("POST", f"/offices/{OFFICE}/accounts", json={"code": "1120", "name": "Kruisposten", "type": "BAS"})
    saved = await service.api.put(
        "/v1/twinfield/connection",
        json={"office": OFFICE, "cross_accounts": {"direct_debit": "1105", "paylink": "1120"}},
        headers=headers,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["cross_accounts"]["paylink"] == "1120"


async def test_settings_saved_before_consent_are_taken_unchecked(service: Service) -> None:
    reply = await service.api.put(
        "/v1/twinfield/connection",
        json={"office": "NLA999999", "debtor_account": "1399"},
        headers=service.headers(uuid.uuid4()),
    )
    assert reply.status_code == 200 and reply.json()["status"] == "not_connected"
    assert reply.json()["reconnect_required"] is True and reply.json()["consent_lost"] is False


async def test_connection_shows_its_cluster_and_lost_consent_asks_for_a_reconnect(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    headers = service.headers(tenant)
    await service.connect(tenant, twinfield)
    shown = (await service.api.get("/v1/twinfield/connection", headers=headers)).json()
    assert shown["cluster_url"] == twinfield.base_url.rstrip("/")
    assert (shown["consent_lost"], shown["reconnect_required"]) == (False, False)

    twinfield.control("POST", "/consent/revoke", json={"client_id": "koppel-sandbox", "organisation": ORG})
    lost = await service.api.get("/v1/twinfield/offices", headers=headers)
    assert (lost.status_code, lost.json()["code"]) == (409, "twinfield_consent_lost")
    shown = (await service.api.get("/v1/twinfield/connection", headers=headers)).json()
    assert shown["status"] == "consent_lost"
    assert (shown["consent_lost"], shown["reconnect_required"]) == (True, True)
    again = await service.api.get("/v1/twinfield/accounts", params={"office": OFFICE}, headers=headers)
    assert (again.status_code, again.json()["code"]) == (409, "twinfield_consent_lost")
