"""The REST API: bad input is refused naming the field and rule (nothing stored or sent),
repeats are idempotent, lists filter and page, and every endpoint is tenant-isolated."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from collection_svc.bootstrap import definition

pytestmark = pytest.mark.integration


async def counts(harness: Any) -> tuple[int, int, int]:
    async with harness.engine.connect() as conn:
        invoices = (await conn.execute(sa.text("SELECT count(*) FROM invoices"))).scalar_one()
        collections = (await conn.execute(sa.text("SELECT count(*) FROM collections"))).scalar_one()
        outbox = (await conn.execute(sa.text("SELECT count(*) FROM outbox WHERE type <> 'system.ping'"))).scalar_one()
    return invoices, collections, outbox


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        ({"amount_cents": 0}, "amount_cents", "positive"),
        ({"amount_cents": -100}, "amount_cents", "positive"),
        ({"currency": "USD"}, "currency", "eur_only"),
        ({"due_date": "2026-01-31"}, "due_date", "not_before_invoice_date"),
        ({"subscription_reference": "NOPE"}, "subscription_reference", "exists"),
        ({"amount_cents": "lots"}, "amount_cents", "int_type"),
        ({"invoice_number": ""}, "invoice_number", "string_too_short"),
        # what Twikey would refuse later (err_invalid_sepachars) or Twinfield could not book
        ({"description": "Zoë Ünal & Söhne <BV> — «€»"}, "description", "sepa_characters"),
        ({"description": "Invoice_1"}, "description", "sepa_characters"),
        ({"description": None, "invoice_number": "INV_1"}, "invoice_number", "sepa_characters"),
        ({"customer_name": "Zoë & Co"}, "customer_name", "sepa_characters"),
        ({"invoice_number": "    "}, "invoice_number", "not_blank"),
        ({"invoice_number": "X" * 41}, "invoice_number", "twinfield_length"),
        ({"customer_email": "a" * 60 + "@example.be"}, "customer_email", "twikey_length"),
        # strict JSON types: a boolean, a float or a string is not an amount in cents
        ({"amount_cents": True}, "amount_cents", "int_type"),
        ({"amount_cents": 49.99}, "amount_cents", "int_type"),
        ({"amount_cents": 4999.0}, "amount_cents", "int_type"),
        ({"amount_cents": "4999"}, "amount_cents", "int_type"),
        ({"amount_cents": 99_999_999_999 + 1}, "amount_cents", "sepa_maximum"),
        ({"currency": "eur"}, "currency", "eur_only"),
        ({"invoice_date": 20260201}, "invoice_date", "iso_date"),
        # control characters are no part of a number, a reference or an address
        ({"description": "Invoice\u0007"}, "description", "sepa_characters"),
        ({"invoice_number": "INV\u00071"}, "invoice_number", "printable"),
        ({"subscription_reference": "SUB\u0007"}, "subscription_reference", "printable"),
        ({"customer_email": "an\u0007@example.be"}, "customer_email", "printable"),
        # dates within the window
        ({"invoice_date": "1900-01-01", "due_date": "1900-01-15"}, "invoice_date", "not_too_old"),
        ({"invoice_date": "2099-01-01", "due_date": "2099-01-15"}, "invoice_date", "not_too_far_ahead"),
        ({"due_date": "9999-12-31"}, "due_date", "payment_term"),
    ],
)
async def test_bad_invoice_is_refused_naming_field_and_rule_and_nothing_is_stored(
    harness: Any, overrides: dict[str, Any], field: str, rule: str
) -> None:
    tenant = uuid.uuid4()
    before = await counts(harness)
    response = await harness.client.post(
        "/v1/invoices", json=harness.body(**overrides), headers=harness.headers(tenant)
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert {"field": field, "rule": rule} in [
        {"field": e["field"], "rule": e["rule"]} for e in response.json()["errors"]
    ]
    assert await counts(harness) == before


async def test_a_bad_character_is_named_with_its_position_and_code_point(harness: Any) -> None:
    body = harness.body(description="Zoë Ünal & Söhne <BV> — «€»")
    response = await harness.client.post("/v1/invoices", json=body, headers=harness.headers(uuid.uuid4()))
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "description" and error["rule"] == "sepa_characters"
    assert (error["position"], error["character"], error["code_point"]) == (3, "ë", "U+00EB")
    assert "U+00EB" in response.json()["detail"]


async def test_the_largest_sepa_amount_and_a_number_with_spaces_around_it_are_accepted(harness: Any) -> None:
    headers = harness.headers(uuid.uuid4())
    body = harness.body(invoice_number="  INV-MAX  ", amount_cents=99_999_999_999)
    posted = await harness.client.post("/v1/invoices", json=body, headers=headers)
    assert posted.status_code == 201, posted.text
    assert posted.json()["invoice_number"] == "INV-MAX" and posted.json()["amount_cents"] == 99_999_999_999


async def test_transliteration_is_opt_in_per_tenant_and_stores_the_sepa_text(harness: Any) -> None:
    headers = harness.headers(uuid.uuid4())
    body = harness.body(customer_name="Zoë Ünal", description="Zoë Ünal & Söhne <BV> — «€»")
    assert (await harness.client.post("/v1/invoices", json=body, headers=headers)).status_code == 422
    policy = await harness.client.put("/v1/collection-policy", json={"transliterate_text": True}, headers=headers)
    assert policy.status_code == 200 and policy.json()["transliterate_text"] is True
    posted = await harness.client.post("/v1/invoices", json=body, headers=headers)
    assert posted.status_code == 201, posted.text
    assert posted.json()["description"] == "Zoe Unal Sohne BV - EUR"
    assert posted.json()["customer"]["name"] == "Zoe Unal"
    # the same posting again is the same invoice
    again = await harness.client.post("/v1/invoices", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == posted.json()["id"]


async def test_policy_fields_take_only_their_json_types(harness: Any) -> None:
    headers = harness.headers(uuid.uuid4())
    for body, field in (
        ({"lead_days": True}, "lead_days"),
        ({"auto_collect": "yes"}, "auto_collect"),
        ({"transliterate_text": 1}, "transliterate_text"),
    ):
        refused = await harness.client.put("/v1/collection-policy", json=body, headers=headers)
        assert refused.status_code == 422, body
        assert field in [e["field"] for e in refused.json()["errors"]]
    assert (await harness.client.get("/v1/collection-policy", headers=headers)).json()["version"] == 0


async def test_a_withdrawn_invoice_number_can_be_posted_again(harness: Any) -> None:
    tenant = uuid.uuid4()
    headers = harness.headers(tenant)
    first = await harness.post_invoice(tenant, invoice_number="INV-AGAIN", description="Wrong text")
    assert (await harness.client.delete(f"/v1/invoices/{first['id']}", headers=headers)).status_code == 200
    body = harness.body(invoice_number="INV-AGAIN", description="Right text")
    again = await harness.client.post("/v1/invoices", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.json()["id"] != first["id"] and again.json()["status"] != "withdrawn"
    assert (await harness.invoice(tenant, first["id"]))["status"] == "withdrawn"
    # while it is live, the number is taken
    other = await harness.client.post("/v1/invoices", json={**body, "amount_cents": 1}, headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "invoice_number_conflict"


@pytest.mark.parametrize(
    ("patch", "field", "rule"),
    [
        ({"description": "Söhne & Co"}, "description", "sepa_characters"),
        ({"amount_cents": True}, "amount_cents", "int_type"),
        ({"amount_cents": 0}, "amount_cents", "positive"),
        ({"due_date": "2026-01-01"}, "due_date", "not_before_invoice_date"),
        ({"invoice_number": "INV-NEW"}, "invoice_number", "extra_forbidden"),
    ],
)
async def test_a_bad_correction_is_refused_and_changes_nothing(
    harness: Any, patch: dict[str, Any], field: str, rule: str
) -> None:
    tenant = uuid.uuid4()
    invoice = await harness.post_invoice(tenant)
    before = await counts(harness)
    response = await harness.client.patch(f"/v1/invoices/{invoice['id']}", json=patch, headers=harness.headers(tenant))
    assert response.status_code == 422, response.text
    assert {"field": field, "rule": rule} in [
        {"field": e["field"], "rule": e["rule"]} for e in response.json()["errors"]
    ]
    assert await counts(harness) == before
    assert await harness.invoice(tenant, invoice["id"]) == invoice


async def test_invoice_number_reused_with_different_data_is_a_conflict_naming_the_fields(harness: Any) -> None:
    tenant = uuid.uuid4()
    headers = harness.headers(tenant)
    body = harness.body(invoice_number="INV-DUP")
    first = await harness.client.post("/v1/invoices", json=body, headers=headers)
    assert first.status_code == 201
    same = await harness.client.post("/v1/invoices", json=body, headers=headers)
    assert same.status_code == 200 and same.json()["id"] == first.json()["id"]
    before = await counts(harness)
    other = await harness.client.post("/v1/invoices", json={**body, "amount_cents": 1}, headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "invoice_number_conflict"
    assert [e["field"] for e in other.json()["errors"]] == ["amount_cents"]
    assert await counts(harness) == before
    # the same number in another tenant is another invoice
    elsewhere = await harness.client.post("/v1/invoices", json=body, headers=harness.headers(uuid.uuid4()))
    assert elsewhere.status_code == 201


async def test_idempotency_key_replays_the_first_answer_and_refuses_other_data(harness: Any) -> None:
    tenant = uuid.uuid4()
    headers = {**harness.headers(tenant), "Idempotency-Key": "key-1"}
    body = harness.body()
    first = await harness.client.post("/v1/invoices", json=body, headers=headers)
    again = await harness.client.post("/v1/invoices", json=body, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = await harness.client.post("/v1/invoices", json=harness.body(), headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"


async def test_policy_defaults_update_and_validation(harness: Any) -> None:
    headers = harness.headers(uuid.uuid4())
    default = await harness.client.get("/v1/collection-policy", headers=headers)
    assert default.json() == {
        "auto_collect": True,
        "lead_days": 3,
        "max_amount_cents": None,
        "notify_debtor": True,
        "paylink_when_no_mandate": True,
        "retry_r_codes": ["AM04"],
        "retry_after_days": 5,
        "max_attempts": 2,
        "transliterate_text": False,
        "version": 0,
    }
    bad = await harness.client.put(
        "/v1/collection-policy", json={"retry_r_codes": ["MD06"], "lead_days": 99}, headers=headers
    )
    assert bad.status_code == 422
    assert {(e["field"], e["rule"]) for e in bad.json()["errors"]} == {
        ("retry_r_codes", "never_retry"),
        ("lead_days", "range"),
    }
    ok = await harness.client.put(
        "/v1/collection-policy", json={"lead_days": 5, "notify_debtor": False}, headers=headers
    )
    assert ok.status_code == 200 and ok.json()["version"] == 1
    again = await harness.client.put("/v1/collection-policy", json={"lead_days": 6}, headers=headers)
    assert again.json()["version"] == 2 and again.json()["lead_days"] == 6


async def test_list_filters_and_cursor_pagination(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    headers = harness.headers(tenant)
    await harness.sign_mandate(tenant, "C-1", "KOP-L")
    numbers = []
    for i in range(5):
        invoice = await harness.post_invoice(tenant, invoice_number=f"L-{i}", customer_number="C-1")
        numbers.append(invoice["invoice_number"])
    await harness.post_invoice(tenant, invoice_number="L-X", customer_number="C-2")

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "customer_number": "C-1"}
        if cursor:
            params["cursor"] = cursor
        page = (await harness.client.get("/v1/invoices", params=params, headers=headers)).json()
        seen += [i["invoice_number"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == numbers
    skipped = (await harness.client.get("/v1/invoices", params={"status": "skipped"}, headers=headers)).json()
    assert [i["invoice_number"] for i in skipped["items"]] == ["L-X"]
    assert skipped["items"][0]["collection"]["reason_code"] == "no_mandate"
    by_number = (await harness.client.get("/v1/invoices", params={"invoice_number": "L-3"}, headers=headers)).json()
    assert [i["invoice_number"] for i in by_number["items"]] == ["L-3"]
    bad = await harness.client.get("/v1/invoices", params={"cursor": "nonsense"}, headers=headers)
    assert bad.status_code == 422


async def test_every_endpoint_is_tenant_isolated(harness: Any) -> None:
    owner, intruder = uuid.uuid4(), uuid.uuid4()
    mine, theirs = harness.headers(owner), harness.headers(intruder)
    invoice = await harness.post_invoice(owner)
    await harness.client.put("/v1/collection-policy", json={"lead_days": 9}, headers=mine)
    sub = (
        await harness.client.post(
            "/v1/subscriptions", json={"reference": "S-ISO", "customer_number": "C-1"}, headers=mine
        )
    ).json()

    assert (await harness.client.get(f"/v1/invoices/{invoice['id']}", headers=theirs)).status_code == 404
    assert (await harness.client.delete(f"/v1/invoices/{invoice['id']}", headers=theirs)).status_code == 404
    assert (await harness.client.post(f"/v1/invoices/{invoice['id']}/collect", headers=theirs)).status_code == 404
    fix = await harness.client.patch(f"/v1/invoices/{invoice['id']}", json={"amount_cents": 1}, headers=theirs)
    assert fix.status_code == 404
    assert (await harness.client.get("/v1/invoices", headers=theirs)).json()["items"] == []
    assert (await harness.client.get("/v1/collection-policy", headers=theirs)).json()["lead_days"] == 3
    assert (await harness.client.get(f"/v1/subscriptions/{sub['id']}", headers=theirs)).status_code == 404
    patch = await harness.client.patch(f"/v1/subscriptions/{sub['id']}", json={"active": False}, headers=theirs)
    assert patch.status_code == 404
    assert (await harness.client.get("/v1/subscriptions", headers=theirs)).json() == []
    # the intruder cannot use the owner's subscription reference either
    refused = await harness.client.post(
        "/v1/invoices", json=harness.body(subscription_reference="S-ISO"), headers=theirs
    )
    assert refused.status_code == 422
    # and the owner still sees everything unchanged
    assert (await harness.client.get(f"/v1/invoices/{invoice['id']}", headers=mine)).json()["status"] == invoice[
        "status"
    ]
    assert (await harness.client.get(f"/v1/subscriptions/{sub['id']}", headers=mine)).json()["active"] is True


async def test_requests_without_a_token_are_refused(harness: Any) -> None:
    for method, path in [
        ("GET", "/v1/invoices"),
        ("POST", "/v1/invoices"),
        ("GET", "/v1/collection-policy"),
        ("GET", "/v1/subscriptions"),
    ]:
        assert (await harness.client.request(method, path)).status_code == 401


async def test_openapi_has_examples_for_the_invoice_and_policy_models(harness: Any) -> None:
    spec = (await harness.client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert schemas["InvoiceIn"]["examples"] and schemas["PolicyIn"]["examples"]
    assert "/v1/invoices/{invoice_id}/collect" in spec["paths"]
    assert definition.name == "collection"


async def test_subscription_create_is_idempotent_and_conflicts_on_other_data(harness: Any) -> None:
    headers = harness.headers(uuid.uuid4())
    body = {"reference": "S-1", "customer_number": "C-1", "collect_automatically": True}
    assert (await harness.client.post("/v1/subscriptions", json=body, headers=headers)).status_code == 201
    assert (await harness.client.post("/v1/subscriptions", json=body, headers=headers)).status_code == 200
    other = await harness.client.post("/v1/subscriptions", json={**body, "customer_number": "C-2"}, headers=headers)
    assert other.status_code == 409


async def test_search_finds_by_number_name_or_twikey_id_and_open_means_no_attempt_yet(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    headers = harness.headers(tenant)
    await harness.sign_mandate(tenant, "C-S1", "KOP-S1")
    found = await harness.post_invoice(
        tenant, invoice_number="S-1", customer_number="C-S1", customer_name="Els Wouters"
    )
    await harness.post_invoice(tenant, invoice_number="S-2", customer_number="C-S2", customer_name="Jan Peeters")
    async with harness.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE collections SET twikey_transaction_id = 'TX-S1' WHERE invoice_id = :id"),
            {"id": found["id"]},
        )

    async def numbers(**params: Any) -> list[str]:
        r = await harness.client.get("/v1/invoices", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return [i["invoice_number"] for i in r.json()["items"]]

    for q in ("S-1", "C-S1", "wouters", "KOP-S1", "TX-S1"):
        assert await numbers(q=q) == ["S-1"], q
    assert await numbers(q="%") == []  # a wildcard is taken literally
    assert await numbers(q="S-1", status="skipped") == []
    assert (await harness.client.get("/v1/invoices", params={"q": ""}, headers=headers)).status_code == 422

    async with harness.engine.begin() as conn:  # an invoice the policy has not looked at yet
        await conn.execute(sa.text("DELETE FROM collections WHERE invoice_id = :id"), {"id": found["id"]})
    assert await numbers(status="open") == ["S-1"]


async def test_stats_count_invoices_by_status_and_collections_per_day(harness: Any) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 10))
    await harness.sign_mandate(tenant, "C-T1", "KOP-T1")
    paid = await harness.post_invoice(tenant, invoice_number="T-1", customer_number="C-T1", amount_cents=1250)
    await harness.post_invoice(tenant, invoice_number="T-2", customer_number="C-T2")
    unseen = await harness.post_invoice(tenant, invoice_number="T-4", customer_number="C-T2")
    await harness.post_invoice(other, invoice_number="T-3", customer_number="C-T2")
    async with harness.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE collections SET status = 'paid', submitted_at = '2026-02-08T10:00:00Z', "
                "paid_at = '2026-02-09T23:30:00Z' WHERE invoice_id = :id"
            ),
            {"id": paid["id"]},
        )
        # a later attempt that was withdrawn does not outrank the paid one
        await conn.execute(
            sa.text(
                "INSERT INTO collections (id, tenant_id, invoice_id, attempt, method, status, version, created_at, "
                "updated_at) VALUES (:id, :t, :invoice, 2, 'direct_debit', 'withdrawn', 1, now(), now())"
            ),
            {"id": uuid.uuid4(), "t": tenant, "invoice": paid["id"]},
        )
        await conn.execute(sa.text("DELETE FROM collections WHERE invoice_id = :id"), {"id": unseen["id"]})
        for owner in (tenant, other):
            await conn.execute(
                sa.text(
                    "INSERT INTO twikey_updates (tenant_id, event_id, event_type, data, failed_at, error) "
                    "VALUES (:t, :e, 'collection.twikey_update', '{}', now(), 'boom')"
                ),
                {"t": owner, "e": uuid.uuid4()},
            )
    r = await harness.client.get("/v1/invoices/stats", headers=harness.headers(tenant))
    assert r.status_code == 200, r.text
    stats = r.json()
    assert {k: v["count"] for k, v in stats["by_status"].items()} == {"paid": 1, "skipped": 1, "open": 1}
    assert stats["parked_updates"] == 1  # this tenant's failed one only
    r = await harness.client.get("/v1/invoices/stats/per-day", params={"days": 5}, headers=harness.headers(tenant))
    assert r.status_code == 200, r.text
    stats = r.json()
    days = {d["day"]: d for d in stats["per_day"]}
    assert list(days) == ["2026-02-06", "2026-02-07", "2026-02-08", "2026-02-09", "2026-02-10"]
    assert (days["2026-02-08"]["collected"], days["2026-02-08"]["collected_cents"]) == (1, 1250)
    assert (days["2026-02-09"]["paid"], days["2026-02-09"]["paid_cents"]) == (1, 1250)
    assert sum(d["paid"] + d["collected"] for d in stats["per_day"]) == 2
    bad = await harness.client.get("/v1/invoices/stats/per-day", params={"days": 0}, headers=harness.headers(tenant))
    assert bad.status_code == 422
