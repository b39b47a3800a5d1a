"""The ERP's mandate API end to end: real PostgreSQL and RabbitMQ, the API and worker in-process,
sync-svc's invite API played by a local HTTP server speaking its contract (see conftest)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from mandate_svc.domain.numbers import twikey_number

if TYPE_CHECKING:  # fixtures' types; the fixtures themselves come from conftest.py
    from conftest import FakeSync, Tap, TenantCtx

pytestmark = pytest.mark.integration

IBAN = "BE16645348971174"
BIC = "GKCCBEBB"


def body(number: str | None = None, delivery: str = "email", scheme: str = "CORE", **customer: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "number": number or f"C-{uuid.uuid4().hex[:8]}",
        "name": "An Peeters",
        "email": "an@example.be",
        "language": "nl",
        "country": "BE",
        **customer,
    }
    return {"customer": {k: v for k, v in c.items() if v is not None}, "scheme": scheme, "delivery": delivery}


async def create(client: httpx.AsyncClient, t: TenantCtx, payload: dict[str, Any], **headers: str) -> httpx.Response:
    return await client.post("/v1/mandates", json=payload, headers={**t.headers, **headers})


async def test_prepare_by_email_returns_the_sign_url_and_publishes_prepared(
    service: httpx.AsyncClient, tenant: TenantCtx, fake_sync: FakeSync, tap: Tap
) -> None:
    payload = body(iban="be16 6453 4897 1174", bic="gkccbebb")
    r = await create(service, tenant, payload)
    assert r.status_code == 201, r.text
    m = r.json()
    assert m["status"] == "prepared"
    assert m["mandate_number"] == twikey_number(m["id"])  # the number Koppel asked Twikey for
    assert m["sign_url"] == f"https://twikey.to/sandbox/{m['mandate_number']}"
    assert r.headers["location"] == f"/v1/mandates/{m['id']}"

    [call] = fake_sync.calls_for(payload["customer"]["number"])
    assert call["tenant_id"] == tenant.id
    assert call["body"]["reference"] == m["id"]
    assert call["body"]["mandate_number"] == m["mandate_number"]
    assert call["body"]["delivery"] == "email"
    assert call["body"]["scheme"] == "CORE"
    assert call["body"]["customer"]["iban"] == IBAN  # normalised before it is sent
    assert call["body"]["customer"]["bic"] == BIC
    assert call["body"]["customer"]["email"] == "an@example.be"

    event = await tap.wait_for("mandate.prepared", mandate_id=m["id"])
    assert event.tenant_id == uuid.UUID(tenant.id)
    assert event.data["version"] == 1
    assert event.data["mandate_number"] == m["mandate_number"]
    assert event.data["sign_url"] == m["sign_url"]

    got = await service.get(f"/v1/mandates/{m['id']}", headers=tenant.headers)
    assert got.status_code == 200
    assert got.json() == m


async def test_prepare_by_sms_sends_normalised_mobile_iban_and_bic(
    service: httpx.AsyncClient, tenant: TenantCtx, fake_sync: FakeSync
) -> None:
    payload = body(delivery="sms", mobile="0470 12 34 56", iban=IBAN, bic=BIC, email=None)
    r = await create(service, tenant, payload)
    assert r.status_code == 201, r.text
    assert r.json()["customer"]["mobile"] == "+32470123456"
    [call] = fake_sync.calls_for(payload["customer"]["number"])
    assert call["body"]["delivery"] == "sms"
    assert call["body"]["customer"]["mobile"] == "+32470123456"


async def test_prepare_as_link_needs_no_email(
    service: httpx.AsyncClient, tenant: TenantCtx, fake_sync: FakeSync
) -> None:
    r = await create(service, tenant, body(delivery="link", email=None))
    assert r.status_code == 201, r.text
    assert r.json()["delivery"] == "link"
    assert r.json()["sign_url"]


async def test_prepare_b2b_for_a_company(service: httpx.AsyncClient, tenant: TenantCtx) -> None:
    r = await create(service, tenant, body(scheme="B2B", name=None, company_name="Janssens BV"))
    assert r.status_code == 201, r.text
    assert r.json()["scheme"] == "B2B"


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"delivery": "email", "email": None}, "customer.email", "required_for_email_delivery"),
        ({"delivery": "sms", "email": None}, "customer.mobile", "required_for_sms_delivery"),
        ({"delivery": "sms", "mobile": "+32470123456", "bic": BIC}, "customer.iban", "required_for_sms_delivery"),
        ({"delivery": "sms", "mobile": "+32470123456", "iban": IBAN}, "customer.bic", "required_for_sms_delivery"),
        ({"iban": "BE16645348971175"}, "customer.iban", "iban_invalid"),
        ({"bic": "GKCCBE"}, "customer.bic", "bic_invalid"),
        ({"mobile": "+32 12"}, "customer.mobile", "phone_invalid"),
        ({"scheme": "B2B"}, "customer.company_name", "required_for_b2b"),
        ({"email": "not-an-email"}, "customer.email", "email_format"),
    ],
)
async def test_failed_precondition_is_a_422_naming_field_and_rule_and_nothing_is_stored_or_sent(
    service: httpx.AsyncClient,
    tenant: TenantCtx,
    fake_sync: FakeSync,
    changes: dict[str, Any],
    field: str,
    rule: str,
) -> None:
    delivery = changes.pop("delivery", "email")
    scheme = changes.pop("scheme", "CORE")
    payload = body(delivery=delivery, scheme=scheme, **changes)
    number = payload["customer"]["number"]
    r = await create(service, tenant, payload, **{"Idempotency-Key": f"k-{number}"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["code"] == "precondition_failed"
    assert {"field": field, "rule": rule} in [{"field": e["field"], "rule": e["rule"]} for e in problem["errors"]]
    assert fake_sync.calls_for(number) == []
    listed = await service.get("/v1/mandates", params={"customer_number": number}, headers=tenant.headers)
    assert listed.json()["items"] == []


async def test_malformed_request_is_a_422_naming_the_field(service: httpx.AsyncClient, tenant: TenantCtx) -> None:
    r = await service.post(
        "/v1/mandates", json={"customer": {"name": "x"}, "delivery": "pigeon"}, headers=tenant.headers
    )
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"customer.number", "delivery"} <= fields


async def test_twikey_refusing_the_invite_is_a_422_and_nothing_is_stored(
    service: httpx.AsyncClient, tenant: TenantCtx, fake_sync: FakeSync
) -> None:
    payload = body()
    number = payload["customer"]["number"]
    fake_sync.failures[number] = (422, "twikey_err_invalid_params", "Invalid parameter", "iban")
    r = await create(service, tenant, payload, **{"Idempotency-Key": f"refused-{number}"})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "twikey_err_invalid_params"
    assert r.json()["errors"][0]["field"] == "customer.iban"
    listed = await service.get("/v1/mandates", params={"customer_number": number}, headers=tenant.headers)
    assert listed.json()["items"] == []
    # the key is free again: the corrected request goes through
    del fake_sync.failures[number]
    again = await create(service, tenant, payload, **{"Idempotency-Key": f"refused-{number}"})
    assert again.status_code == 201


async def test_twikey_unavailable_without_key_stores_nothing(
    service: httpx.AsyncClient, tenant: TenantCtx, fake_sync: FakeSync
) -> None:
    payload = body()
    number = payload["customer"]["number"]
    fake_sync.failures[number] = (503, "twikey_unavailable", "Twikey did not answer", None)
    r = await create(service, tenant, payload)
    assert r.status_code == 503
    assert r.json()["code"] == "twikey_unavailable"
    assert len(fake_sync.calls_for(number)) == 1  # sync-svc retried Twikey already; we do not multiply it
    listed = await service.get("/v1/mandates", params={"customer_number": number}, headers=tenant.headers)
    assert listed.json()["items"] == []


async def test_twikey_unavailable_with_key_keeps_a_requested_mandate_that_a_retry_completes(
    service: httpx.AsyncClient, tenant: TenantCtx, fake_sync: FakeSync, tap: Tap
) -> None:
    payload = body()
    number = payload["customer"]["number"]
    key = {"Idempotency-Key": f"retry-{number}"}
    fake_sync.failures[number] = (503, "twikey_unavailable", "Twikey did not answer", None)
    first = await create(service, tenant, payload, **key)
    assert first.status_code == 503
    mandate_id = first.json()["mandate_id"]
    got = await service.get(f"/v1/mandates/{mandate_id}", headers=tenant.headers)
    assert got.json()["status"] == "requested"

    del fake_sync.failures[number]
    second = await create(service, tenant, payload, **key)
    assert second.status_code == 201, second.text
    assert second.json()["id"] == mandate_id
    assert second.json()["status"] == "prepared"
    refs = {c["body"]["reference"] for c in fake_sync.calls_for(number)}
    assert refs == {mandate_id}  # the retry invites with the same reference
    await tap.wait_for("mandate.prepared", mandate_id=mandate_id)


async def test_same_idempotency_key_and_body_returns_the_same_mandate_once(
    service: httpx.AsyncClient, tenant: TenantCtx, fake_sync: FakeSync
) -> None:
    payload = body()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await create(service, tenant, payload, **key)
    second = await create(service, tenant, payload, **key)
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert len(fake_sync.calls_for(payload["customer"]["number"])) == 1


async def test_reused_idempotency_key_with_another_body_is_a_409(service: httpx.AsyncClient, tenant: TenantCtx) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    assert (await create(service, tenant, body(), **key)).status_code == 201
    r = await create(service, tenant, body(), **key)
    assert r.status_code == 409
    assert r.json()["code"] == "idempotency_key_reused"


async def test_idempotency_keys_belong_to_one_tenant(
    service: httpx.AsyncClient, tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    payload = body()
    key = {"Idempotency-Key": "shared-key"}
    a = await create(service, tenant, payload, **key)
    b = await create(service, other_tenant, payload, **key)
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]


async def test_list_filters_and_cursor_pagination(service: httpx.AsyncClient, tenant: TenantCtx) -> None:
    number = f"C-{uuid.uuid4().hex[:8]}"
    made = []
    for scheme in ("CORE", "CORE", "B2B", "CORE", "B2B"):
        extra = {"company_name": "Janssens BV"} if scheme == "B2B" else {}
        r = await create(service, tenant, body(number=number, scheme=scheme, **extra))
        assert r.status_code == 201
        made.append(r.json()["id"])

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"customer_number": number, "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await service.get("/v1/mandates", params=params, headers=tenant.headers)).json()
        seen += [m["id"] for m in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3
    assert seen == list(reversed(made))  # newest first, each once

    b2b = (
        await service.get("/v1/mandates", params={"customer_number": number, "scheme": "B2B"}, headers=tenant.headers)
    ).json()
    assert {m["id"] for m in b2b["items"]} == {made[2], made[4]}
    prepared = (
        await service.get(
            "/v1/mandates", params={"customer_number": number, "status": ["prepared"]}, headers=tenant.headers
        )
    ).json()
    assert len(prepared["items"]) == 5
    active = (
        await service.get(
            "/v1/mandates", params={"customer_number": number, "status": "active"}, headers=tenant.headers
        )
    ).json()
    assert active["items"] == []


async def test_a_cursor_we_did_not_hand_out_is_a_422(service: httpx.AsyncClient, tenant: TenantCtx) -> None:
    r = await service.get("/v1/mandates", params={"cursor": "garbage"}, headers=tenant.headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["rule"] == "cursor_invalid"


async def test_remind_a_prepared_mandate_sends_the_command(
    service: httpx.AsyncClient, tenant: TenantCtx, tap: Tap
) -> None:
    m = (await create(service, tenant, body())).json()
    r = await service.post(f"/v1/mandates/{m['id']}/remind", headers=tenant.headers)
    assert r.status_code == 202
    command = await tap.wait_for("sync.mandate_action_requested", mandate_number=m["mandate_number"])
    assert command.data["action"] == "remind"
    assert command.tenant_id == uuid.UUID(tenant.id)


async def test_delete_a_prepared_mandate_cancels_it_and_asks_twikey_to_delete_it(
    service: httpx.AsyncClient, tenant: TenantCtx, tap: Tap
) -> None:
    m = (await create(service, tenant, body())).json()
    r = await service.delete(f"/v1/mandates/{m['id']}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert r.json()["version"] == 2
    command = await tap.wait_for("sync.mandate_action_requested", mandate_number=m["mandate_number"], action="cancel")
    assert command.data["reason"] == "deleted by the creditor"
    event = await tap.wait_for("mandate.cancelled", mandate_id=m["id"])
    assert event.data["version"] == 2
    again = await service.delete(f"/v1/mandates/{m['id']}", headers=tenant.headers)
    assert again.status_code == 200
    assert again.json()["version"] == 2


async def test_suspending_or_resuming_a_prepared_mandate_is_a_409(
    service: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    m = (await create(service, tenant, body())).json()
    for action in ("suspend", "resume"):
        r = await service.post(f"/v1/mandates/{m['id']}/{action}", headers=tenant.headers)
        assert r.status_code == 409
        assert r.json()["code"] == "mandate_invalid_state"


async def test_unknown_mandate_is_a_404(service: httpx.AsyncClient, tenant: TenantCtx) -> None:
    for mandate_id in (str(uuid.uuid4()), "not-a-uuid"):
        r = await service.get(f"/v1/mandates/{mandate_id}", headers=tenant.headers)
        assert r.status_code == 404
        assert r.json()["code"] == "mandate_not_found"


async def test_without_a_token_every_endpoint_is_a_401(service: httpx.AsyncClient) -> None:
    mid = str(uuid.uuid4())
    calls = [
        service.post("/v1/mandates", json=body()),
        service.get("/v1/mandates"),
        service.get(f"/v1/mandates/{mid}"),
        service.post(f"/v1/mandates/{mid}/remind"),
        service.delete(f"/v1/mandates/{mid}"),
        service.get("/v1/customers/C-1/mandates"),
    ]
    for call in calls:
        assert (await call).status_code == 401


async def test_another_tenant_can_neither_see_nor_change_a_mandate(
    service: httpx.AsyncClient, tenant: TenantCtx, other_tenant: TenantCtx, tap: Tap
) -> None:
    payload = body()
    number = payload["customer"]["number"]
    m = (await create(service, tenant, payload)).json()
    mid = m["id"]
    other = other_tenant.headers

    assert (await service.get(f"/v1/mandates/{mid}", headers=other)).status_code == 404
    for action in ("remind", "suspend", "resume"):
        assert (await service.post(f"/v1/mandates/{mid}/{action}", headers=other)).status_code == 404
    assert (await service.delete(f"/v1/mandates/{mid}", params={"reason": "x"}, headers=other)).status_code == 404
    listed = (await service.get("/v1/mandates", headers=other)).json()
    assert mid not in [x["id"] for x in listed["items"]]
    by_customer = (await service.get("/v1/mandates", params={"customer_number": number}, headers=other)).json()
    assert by_customer["items"] == []
    view = (await service.get(f"/v1/customers/{number}/mandates", headers=other)).json()
    assert view["mandates"] == [] and view["collectable"] is False

    # and for its owner nothing changed
    mine = (await service.get(f"/v1/mandates/{mid}", headers=tenant.headers)).json()
    assert mine == m
    assert tap.of("sync.mandate_action_requested", mandate_number=m["mandate_number"]) == []


async def test_customer_view_of_a_customer_without_active_mandate(
    service: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    payload = body()
    number = payload["customer"]["number"]
    await create(service, tenant, payload)
    view = (await service.get(f"/v1/customers/{number}/mandates", headers=tenant.headers)).json()
    assert view["customer_number"] == number
    assert view["collectable"] is False
    assert view["mandate"] is None
    assert [m["status"] for m in view["mandates"]] == ["prepared"]


async def test_openapi_documents_the_mandate_api_with_examples(service: httpx.AsyncClient) -> None:
    spec = (await service.get("/openapi.json")).json()
    for path in (
        "/v1/mandates",
        "/v1/mandates/{mandate_id}",
        "/v1/mandates/{mandate_id}/suspend",
        "/v1/customers/{customer_number}/mandates",
    ):
        assert path in spec["paths"]
    schemas = spec["components"]["schemas"]
    assert schemas["MandateCreate"]["examples"]
    assert schemas["MandateOut"]["examples"]
    post = spec["paths"]["/v1/mandates"]["post"]
    assert {"409", "422", "503"} <= set(post["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in post["parameters"])


async def test_search_finds_by_customer_or_mandate_number_or_part_of_a_name(
    service: httpx.AsyncClient, tenant: TenantCtx
) -> None:
    tag = uuid.uuid4().hex[:8]
    first = (await create(service, tenant, body(name=f"Els {tag} Wouters"))).json()
    second = (await create(service, tenant, body(name="Jan Peeters"))).json()

    async def found(q: str) -> list[str]:
        r = await service.get("/v1/mandates", params={"q": q}, headers=tenant.headers)
        assert r.status_code == 200
        return [m["id"] for m in r.json()["items"]]

    assert await found(tag.upper()) == [first["id"]]  # part of the name, any case
    assert await found(second["customer"]["number"]) == [second["id"]]
    assert await found(first["mandate_number"]) == [first["id"]]
    assert await found(f"{tag}%") == []  # a LIKE wildcard is taken literally


async def test_stats_count_this_tenants_mandates_by_status(
    service: httpx.AsyncClient, tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    before = (await service.get("/v1/mandates/stats", headers=tenant.headers)).json()["by_status"]
    await create(service, tenant, body())
    await create(service, other_tenant, body())
    stats = (await service.get("/v1/mandates/stats", headers=tenant.headers)).json()
    after = stats["by_status"]
    assert after.get("prepared", 0) == before.get("prepared", 0) + 1
    assert sum(after.values()) == sum(before.values()) + 1
    assert set(stats["oldest_created_at"]) == set(after)


async def test_history_lists_a_mandates_events_and_commands_and_is_a_404_for_another_tenant(
    service: httpx.AsyncClient, tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    made = (await create(service, tenant, body())).json()
    r = await service.request(
        "DELETE", f"/v1/mandates/{made['id']}", params={"reason": "wrong customer"}, headers=tenant.headers
    )
    assert r.status_code == 200
    items = (await service.get(f"/v1/mandates/{made['id']}/history", headers=tenant.headers)).json()["items"]
    assert items[0]["type"] == "mandate.prepared" and items[0]["status"] == "prepared"
    cancelled = [i for i in items if i["status"] == "cancelled"]
    assert len(cancelled) == 1 and cancelled[0]["reason"] == "wrong customer"
    asked = [i["action"] for i in items if i["action"]]
    assert asked == ["cancel"]  # the command to Twikey (a prepared mandate is deleted there)
    hidden = await service.get(f"/v1/mandates/{made['id']}/history", headers=other_tenant.headers)
    assert hidden.status_code == 404
