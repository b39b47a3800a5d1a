"""``POST /v1/collection-policy/preview`` on the real PostgreSQL and RabbitMQ: it stores nothing,
answers a bad policy as PUT does, and says what the engine and the scheduler then really do."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from koppel_shared.events import new_event
from koppel_shared.events.mandate import MandateSigned
from koppel_shared.testing.waiting import eventually

from .conftest import Harness

PROPOSED = {"lead_days": 10, "max_amount_cents": 50_000}


async def until_consuming(h: Harness) -> None:
    """The worker fixture gives the worker a fixed moment to bind its queues; on a busy machine an
    event published before that is unroutable and lost. Publish one event (the same envelope each
    time, so the inbox takes it once) until the worker has handled it."""
    probe = new_event(
        MandateSigned(
            mandate_id="probe", mandate_number="PROBE", customer_number="PROBE", status="active", scheme="CORE",
            max_amount_cents=None, version=1, updated_at=h.clock(),
        ),
        tenant_id=uuid.uuid4(),
    )  # fmt: skip
    for _ in range(20):
        await h.publish(probe)
        try:
            await h.handled(probe, within=2)
            return
        except AssertionError:
            continue
    raise AssertionError("the worker never consumed mandate events")


async def _preview(h: Harness, tenant: uuid.UUID, body: dict[str, Any]) -> Any:
    return await h.client.post("/v1/collection-policy/preview", json=body, headers=h.headers(tenant))


async def test_preview_agrees_with_what_the_engine_and_the_scheduler_then_do(harness: Harness) -> None:
    h = harness
    h.clock.set_date(date(2026, 2, 1))
    await until_consuming(h)
    tenant = uuid.uuid4()
    tag = tenant.hex[:6].upper()
    a, b, c = f"A-{tag}", f"B-{tag}", f"C-{tag}"
    await h.sign_mandate(tenant, a, f"MA{tag}", max_amount_cents=100_000)
    await h.sign_mandate(tenant, b, f"MB{tag}", max_amount_cents=3_000)
    posted = {
        "within_both": await h.post_invoice(tenant, customer_number=a, amount_cents=4_999, due_date="2026-02-15"),
        "above_both": await h.post_invoice(tenant, customer_number=a, amount_cents=200_000, due_date="2026-02-10"),
        "small_limit": await h.post_invoice(tenant, customer_number=b, amount_cents=2_500, due_date="2026-02-20"),
        "no_mandate": await h.post_invoice(tenant, customer_number=c, amount_cents=1_000, due_date="2026-02-12"),
        "above_new_max": await h.post_invoice(tenant, customer_number=a, amount_cents=60_000, due_date="2026-02-09"),
        "due_soon": await h.post_invoice(tenant, customer_number=a, amount_cents=1_500, due_date="2026-02-08"),
    }
    name_of = {inv["id"]: name for name, inv in posted.items()}
    before = {name: (await h.invoice(tenant, inv["id"]))["collection"] for name, inv in posted.items()}
    policy_before = (await h.client.get("/v1/collection-policy", headers=h.headers(tenant))).json()

    reply = await _preview(h, tenant, PROPOSED)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    by_name = {name_of[i["invoice_id"]]: i for i in answer["invoices"]}
    assert set(by_name) == set(posted)
    assert by_name["within_both"]["now"] == before["within_both"]["reason"]
    assert (by_name["within_both"]["then_status"], by_name["within_both"]["collect_on"]) == ("scheduled", "2026-02-05")
    assert by_name["within_both"]["amount"] == "49.99"
    assert (by_name["above_both"]["now_reason_code"], by_name["above_both"]["then_reason_code"]) == (
        "above_mandate_limit",
        "above_tenant_limit",
    )
    assert by_name["small_limit"]["collect_on"] == "2026-02-10"
    assert by_name["no_mandate"]["then_status"] == "paylink" and not by_name["no_mandate"]["changed"]
    assert by_name["above_new_max"]["then_status"] == "skipped" and by_name["above_new_max"]["collect_on"] is None
    assert by_name["due_soon"]["collect_on"] == "2026-02-01"  # never in the past: at once
    assert answer["summary"] == {
        "open_invoices": 6,
        "would_collect": 3,
        "would_hold": 2,
        "pay_links": 1,
        "changed": 5,
        "listed": 6,
    }
    # Nothing was stored.
    assert (await h.client.get("/v1/collection-policy", headers=h.headers(tenant))).json() == policy_before
    for name, inv in posted.items():
        assert (await h.invoice(tenant, inv["id"]))["collection"] == before[name]

    # Now for real: save the policy, let the customers' mandates change (the engine decides their
    # open invoices again), and let the scheduler run.
    saved = await h.client.put("/v1/collection-policy", json=PROPOSED, headers=h.headers(tenant))
    assert saved.status_code == 200, saved.text
    await h.sign_mandate(tenant, a, f"MA{tag}", max_amount_cents=100_000, version=2)
    await h.sign_mandate(tenant, b, f"MB{tag}", max_amount_cents=3_000, version=2)
    submitted_today = {i["invoice_id"] for i in answer["invoices"] if i["collect_on"] == "2026-02-01"}

    async def scheduler_took_todays() -> bool:
        items = h.tap.collect_items(tenant)
        return len(items) == len(submitted_today)

    await eventually(scheduler_took_todays, within=15)
    for item in answer["invoices"]:
        collection = (await h.invoice(tenant, item["invoice_id"]))["collection"]
        if item["invoice_id"] in submitted_today:
            assert collection["status"] == "submitted"
            continue
        expected = "skipped" if item["then_status"] == "paylink" else item["then_status"]
        assert (collection["status"], collection["collect_on"]) == (expected, item["collect_on"]), item
        assert collection["reason_code"] == item["then_reason_code"] or item["then_status"] == "paylink"

    # Day by day, the scheduler submits exactly what the preview said it would collect that day.
    invoice_of = {}
    for inv in posted.values():
        invoice_of[(await h.invoice(tenant, inv["id"]))["collection"]["collection_id"]] = inv["id"]
    planned = sorted({i["collect_on"] for i in answer["invoices"] if i["then_status"] == "scheduled"})
    for day in planned:
        h.clock.set_date(date.fromisoformat(day))
        expected = {i["invoice_id"] for i in answer["invoices"] if i["collect_on"] and i["collect_on"] <= day}

        async def submitted_by_then(count: int = len(expected)) -> bool:
            return len(h.tap.collect_items(tenant)) >= count

        await eventually(submitted_by_then, within=15)
        items = h.tap.collect_items(tenant)
        # submitted on the day the preview named, so the bank is asked for that date
        assert {invoice_of[i["collection_id"]]: i["requested_date"] for i in items} == {
            i["invoice_id"]: i["collect_on"] for i in answer["invoices"] if i["invoice_id"] in expected
        }
    held = [i["invoice_id"] for i in answer["invoices"] if i["then_status"] != "scheduled"]
    for invoice_id in held:
        assert (await h.invoice(tenant, invoice_id))["collection"]["status"] == "skipped"


async def test_a_policy_put_would_refuse_is_refused_the_same_way(harness: Harness) -> None:
    tenant = uuid.uuid4()
    body = {"lead_days": 99, "retry_r_codes": ["MD06"], "max_amount_cents": 0}
    put = await harness.client.put("/v1/collection-policy", json=body, headers=harness.headers(tenant))
    preview = await _preview(harness, tenant, body)
    assert put.status_code == preview.status_code == 422
    assert preview.json()["errors"] == put.json()["errors"]
    assert {e["field"] for e in preview.json()["errors"]} == {"lead_days", "retry_r_codes", "max_amount_cents"}
    typed = await _preview(harness, tenant, {"lead_days": "3"})
    assert typed.status_code == 422 and typed.json()["errors"][0]["field"] == "lead_days"


async def test_preview_sees_only_the_callers_invoices(harness: Harness) -> None:
    harness.clock.set_date(date(2026, 2, 1))
    mine, other = uuid.uuid4(), uuid.uuid4()
    await harness.post_invoice(other, customer_number=f"X-{other.hex[:6]}", due_date="2026-02-20")
    answer = (await _preview(harness, mine, PROPOSED)).json()
    assert answer["invoices"] == [] and answer["summary"]["open_invoices"] == 0
