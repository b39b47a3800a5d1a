"""An invoice from posting to paid, failed, reversed — through the real worker, database and broker,
with Twikey's answers driven as sync-svc would publish them."""

from __future__ import annotations

import json
import uuid
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from collection_svc.service_layer.engine import submit_due
from koppel_shared.auth import issue_token
from koppel_shared.db import make_session_factory
from koppel_shared.events import Envelope, new_event
from koppel_shared.events.mandate import MandateCancelled, MandateResumed, MandateSuspended, MandateUpdated
from koppel_shared.events.twikey import (
    TwikeyPaylinkChanged,
    TwikeyPaylinkCreated,
    TwikeyTransactionChanged,
    TwikeyTransactionCreated,
    TwikeyTransactionRefused,
    twikey_event_uuid,
)
from koppel_shared.testing.fixtures import TEST_SIGNING_KEY
from koppel_shared.testing.waiting import eventually

pytestmark = pytest.mark.integration


def tx_changed(
    tenant_id: uuid.UUID,
    collection_id: str,
    transaction_id: str,
    seq: int,
    state: str,
    amount_cents: int = 4999,
    bank_error: str | None = None,
    reversal: bool = False,
) -> Envelope:
    twikey_event_id = f"transaction/{seq}"
    return new_event(
        TwikeyTransactionChanged(
            twikey_event_id=twikey_event_id,
            feed_seq=seq,
            transaction_id=transaction_id,
            reference=collection_id,
            mandate_number="KOP-1",
            amount_cents=amount_cents,
            state=state,
            final=state != "PAID",
            reversal=reversal,
            bank_error=bank_error,
            bank_message="bank says no" if bank_error else None,
        ),
        tenant_id=tenant_id,
        id=twikey_event_uuid(tenant_id, twikey_event_id),
    )


async def submitted_item(harness: Any, tenant_id: uuid.UUID, invoice_id: str, collection_id: str) -> dict[str, Any]:
    """Wait for the bulk command carrying this collection; it is there exactly once."""

    async def sent() -> bool:
        return any(i["collection_id"] == collection_id for i in harness.tap.collect_items(tenant_id))

    await eventually(sent, within=15)
    items = [i for i in harness.tap.collect_items(tenant_id) if i["collection_id"] == collection_id]
    assert len(items) == 1
    invoice = await harness.invoice(tenant_id, invoice_id)
    current = next(a for a in invoice["attempts"] if a["collection_id"] == collection_id)
    assert current["status"] == "submitted" and current["reason_code"] == "sent"
    return items[0]


async def test_invoice_is_collected_on_its_date_then_paid_and_a_replay_changes_nothing(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    await harness.sign_mandate(tenant, "C-1", "KOP-1", max_amount_cents=100_000)
    invoice = await harness.post_invoice(tenant, due_date="2026-02-15", amount_cents=4999)
    collection = invoice["collection"]
    assert invoice["status"] == "scheduled"
    assert collection["reason_code"] == "due" and collection["collect_on"] == "2026-02-12"
    assert collection["mandate_number"] == "KOP-1"

    # before its date nothing is submitted
    factory = make_session_factory(harness.engine)
    await submit_due(factory, harness.clock())
    assert (await harness.invoice(tenant, invoice["id"]))["status"] == "scheduled"

    harness.clock.set_date(date(2026, 2, 12))
    item = await submitted_item(harness, tenant, invoice["id"], collection["collection_id"])
    assert item["mandate_number"] == "KOP-1" and item["amount_cents"] == 4999
    assert item["reference"] == collection["collection_id"] and item["requested_date"] == "2026-02-12"

    created = new_event(
        TwikeyTransactionCreated(
            collection_id=collection["collection_id"], transaction_id="5001", mandate_number="KOP-1", amount_cents=4999
        ),
        tenant_id=tenant,
    )
    await harness.publish(created)
    await harness.invoice_eventually(
        tenant, invoice["id"], lambda i: i["collection"]["twikey_transaction_id"] == "5001"
    )
    [submitted] = await harness.tap.wait_for("collection.submitted", collection_id=collection["collection_id"])
    assert submitted.data["twikey_transaction_id"] == "5001" and submitted.data["status"] == "submitted"

    paid = tx_changed(tenant, collection["collection_id"], "5001", 10, "PAID")
    await harness.publish(paid)
    done = await harness.invoice_eventually(tenant, invoice["id"], lambda i: i["status"] == "paid")
    assert done["collection"]["paid_at"] is not None
    [paid_event] = await harness.tap.wait_for("collection.paid", collection_id=collection["collection_id"])
    assert paid_event.data["twikey_transaction_id"] == "5001"
    assert paid_event.data["invoice_number"] == invoice["invoice_number"]
    assert paid_event.data["customer_email"] == "an@example.be"
    assert paid_event.data["mandate_number"] == "KOP-1"
    versions = [
        m.data["version"] for m in harness.tap.messages if m.data.get("collection_id") == collection["collection_id"]
    ]
    assert sorted(versions) == versions or len(set(versions)) == len(versions)

    # a feed reset replays the same messages (same ids → inbox) and, defensively, with new ids
    replays = [
        paid,
        new_event(TwikeyTransactionCreated(**created.data), tenant_id=tenant),
        new_event(TwikeyTransactionChanged(**paid.data), tenant_id=tenant),
    ]
    for envelope in replays:
        await harness.publish(envelope)
    for envelope in replays[1:]:
        await harness.handled(envelope)
    assert len(harness.tap.of_type("collection.paid", collection_id=collection["collection_id"])) == 1
    assert len([i for i in harness.tap.collect_items(tenant)]) == 1
    after = await harness.invoice(tenant, invoice["id"])
    assert len(after["attempts"]) == 1 and after["collection"]["version"] == done["collection"]["version"]

    # a reversal after PAID: MD06 (refund requested) → reversed, never retried
    reversal = tx_changed(tenant, collection["collection_id"], "5001", 11, "ERROR", bank_error="MD06", reversal=True)
    await harness.publish(reversal)
    reversed_ = await harness.invoice_eventually(tenant, invoice["id"], lambda i: i["status"] == "reversed")
    assert reversed_["collection"]["r_code"] == "MD06"
    assert "Refund" in reversed_["collection"]["r_code_meaning"]
    assert "never retried" in reversed_["collection"]["reason"]
    [event] = await harness.tap.wait_for("collection.reversed", collection_id=collection["collection_id"])
    assert event.data["r_code"] == "MD06" and event.data["status"] == "reversed"

    # replaying the PAID and the reversal after the reversal changes nothing
    late = [new_event(TwikeyTransactionChanged(**paid.data), tenant_id=tenant), reversal]
    for envelope in late:
        await harness.publish(envelope)
    await harness.handled(late[0])
    assert (await harness.invoice(tenant, invoice["id"]))["status"] == "reversed"
    assert len(harness.tap.of_type("collection.paid", collection_id=collection["collection_id"])) == 1
    assert len(harness.tap.of_type("collection.reversed", collection_id=collection["collection_id"])) == 1


async def test_insufficient_funds_fails_with_r_code_and_is_retried_once_after_n_days(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 3, 1))
    await harness.sign_mandate(tenant, "C-1", "KOP-1")
    invoice = await harness.post_invoice(tenant, invoice_date="2026-03-01", due_date="2026-03-01")
    first = invoice["collection"]["collection_id"]
    await submitted_item(harness, tenant, invoice["id"], first)

    await harness.publish(tx_changed(tenant, first, "7001", 1, "ERROR", bank_error="AM04"))
    failed = await harness.invoice_eventually(tenant, invoice["id"], lambda i: len(i["attempts"]) == 2)
    one, two = failed["attempts"]
    assert one["status"] == "failed" and one["r_code"] == "AM04"
    assert one["r_code_meaning"] == "Insufficient funds"
    assert two["status"] == "scheduled" and two["reason_code"] == "retry" and two["collect_on"] == "2026-03-06"
    [event] = await harness.tap.wait_for("collection.failed", collection_id=first)
    assert event.data["r_code"] == "AM04" and "AM04" in event.data["reason"]

    harness.clock.set_date(date(2026, 3, 6))
    item = await submitted_item(harness, tenant, invoice["id"], two["collection_id"])
    assert item["collection_id"] != first  # a new attempt has its own key at Twikey

    await harness.publish(tx_changed(tenant, two["collection_id"], "7002", 2, "ERROR", bank_error="AM04"))
    final = await harness.invoice_eventually(tenant, invoice["id"], lambda i: i["status"] == "failed")
    assert len(final["attempts"]) == 2 and "no retries left" in final["collection"]["reason"]


async def test_refused_by_twikey_fails_with_the_reason(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 3, 1))
    await harness.sign_mandate(tenant, "C-1", "KOP-1")
    invoice = await harness.post_invoice(tenant, invoice_date="2026-03-01", due_date="2026-03-01")
    cid = invoice["collection"]["collection_id"]
    await submitted_item(harness, tenant, invoice["id"], cid)
    await harness.publish(
        new_event(
            TwikeyTransactionRefused(
                collection_id=cid, mandate_number="KOP-1", code="err_invalid_state", message="mandate not active"
            ),
            tenant_id=tenant,
        )
    )
    failed = await harness.invoice_eventually(tenant, invoice["id"], lambda i: i["status"] == "failed")
    assert failed["collection"]["reason_code"] == "err_invalid_state"
    assert "mandate not active" in failed["collection"]["reason"]


async def test_an_invoice_refused_by_twikey_is_corrected_and_collected_under_the_same_number(harness: Any) -> None:
    tenant = uuid.uuid4()
    headers = harness.headers(tenant)
    harness.clock.set_date(date(2026, 3, 1))
    await harness.sign_mandate(tenant, "C-1", "KOP-1")
    invoice = await harness.post_invoice(tenant, invoice_date="2026-03-01", due_date="2026-03-01")
    first = invoice["collection"]["collection_id"]
    await submitted_item(harness, tenant, invoice["id"], first)
    # while it is at Twikey it cannot be changed
    busy = await harness.client.patch(f"/v1/invoices/{invoice['id']}", json={"amount_cents": 999}, headers=headers)
    assert busy.status_code == 409 and busy.json()["code"] == "collection_in_progress"
    await harness.publish(
        new_event(
            TwikeyTransactionRefused(
                collection_id=first, mandate_number="KOP-1", code="err_billing_overdrawn", message="above max"
            ),
            tenant_id=tenant,
        )
    )
    await harness.invoice_eventually(tenant, invoice["id"], lambda i: i["status"] == "failed")

    fixed = await harness.client.patch(
        f"/v1/invoices/{invoice['id']}", json={"amount_cents": 999, "description": "Invoice part 1"}, headers=headers
    )
    assert fixed.status_code == 200, fixed.text
    body = fixed.json()
    assert body["id"] == invoice["id"] and body["invoice_number"] == invoice["invoice_number"]
    assert body["amount_cents"] == 999 and body["description"] == "Invoice part 1"
    assert body["status"] == "scheduled" and body["collection"]["attempt"] == 2
    second = body["collection"]["collection_id"]
    item = await submitted_item(harness, tenant, invoice["id"], second)
    assert item["amount_cents"] == 999 and item["message"] == "Invoice part 1"
    [event] = await harness.tap.wait_for("collection.scheduled", collection_id=second)
    assert event.data["amount_cents"] == 999 and event.data["reason_code"] == "due"
    # the ERP posting the corrected invoice again is the same invoice, not a conflict
    again = await harness.client.post(
        "/v1/invoices",
        json=harness.body(
            invoice_number=invoice["invoice_number"],
            invoice_date="2026-03-01",
            due_date="2026-03-01",
            amount_cents=999,
            description="Invoice part 1",
        ),
        headers=headers,
    )
    assert again.status_code == 200 and again.json()["id"] == invoice["id"]


async def test_correcting_an_open_invoice_decides_its_collection_again(harness: Any) -> None:
    tenant = uuid.uuid4()
    headers = harness.headers(tenant)
    harness.clock.set_date(date(2026, 2, 1))
    await harness.sign_mandate(tenant, "C-1", "KOP-1", max_amount_cents=5000)
    invoice = await harness.post_invoice(tenant, amount_cents=6000)
    assert invoice["collection"]["reason_code"] == "above_mandate_limit"
    fixed = await harness.client.patch(
        f"/v1/invoices/{invoice['id']}", json={"amount_cents": 5000, "due_date": "2026-02-20"}, headers=headers
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["status"] == "scheduled" and fixed.json()["collection"]["collect_on"] == "2026-02-17"
    assert fixed.json()["collection"]["collection_id"] == invoice["collection"]["collection_id"]
    assert len(fixed.json()["attempts"]) == 1


async def test_skips_carry_a_reason_code_and_a_pay_link_event_carries_its_url(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    invoice = await harness.post_invoice(tenant, customer_number="C-8", amount_cents=2500)
    [skipped] = await harness.tap.wait_for("collection.skipped", invoice_id=invoice["id"])
    assert skipped.data["reason_code"] == "no_mandate" and skipped.data["reason"]
    [request] = await harness.tap.wait_for("sync.paylink_requested", tenant=tenant)
    created = new_event(
        TwikeyPaylinkCreated(reference=request.data["reference"], paylink_id="PL-8", url="https://pay.example/PL-8"),
        tenant_id=tenant,
    )
    await harness.publish(created)
    [event] = await harness.tap.wait_for("collection.paylink_created", invoice_id=invoice["id"])
    assert event.data["url"] == "https://pay.example/PL-8" and event.data["paylink_id"] == "PL-8"
    assert event.data["invoice_number"] == invoice["invoice_number"] and event.data["amount_cents"] == 2500
    assert event.data["customer_number"] == "C-8" and event.data["reason_code"] == "no_mandate"
    assert event.causation_id == str(created.id)
    # sync-svc answering twice (a redelivery with a new id) announces the link once
    again = new_event(TwikeyPaylinkCreated(**created.data), tenant_id=tenant)
    await harness.publish(again)
    await harness.handled(again)
    assert len(harness.tap.of_type("collection.paylink_created", invoice_id=invoice["id"])) == 1


async def test_suspended_mandate_stops_scheduled_invoices_and_resume_schedules_them_again(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    await harness.sign_mandate(tenant, "C-1", "KOP-1", version=1)
    invoice = await harness.post_invoice(tenant)
    assert invoice["status"] == "scheduled"

    await harness.sign_mandate(tenant, "C-1", "KOP-1", version=2, status="suspended", event=MandateSuspended)
    held = await harness.invoice(tenant, invoice["id"])
    assert held["status"] == "skipped" and held["collection"]["reason_code"] == "mandate_suspended"
    assert "suspended" in held["collection"]["reason"]
    await harness.tap.wait_for("collection.skipped", collection_id=invoice["collection"]["collection_id"])

    # a stale event (older version) does not undo the suspension
    await harness.sign_mandate(tenant, "C-1", "KOP-1", version=1, status="active")
    assert (await harness.invoice(tenant, invoice["id"]))["status"] == "skipped"

    await harness.sign_mandate(tenant, "C-1", "KOP-1", version=3, status="active", event=MandateResumed)
    again = await harness.invoice(tenant, invoice["id"])
    assert again["status"] == "scheduled" and again["collection"]["collect_on"] == "2026-02-12"
    assert again["collection"]["collection_id"] == invoice["collection"]["collection_id"]

    await harness.sign_mandate(tenant, "C-1", "KOP-1", version=4, status="cancelled", event=MandateCancelled)
    stopped = await harness.invoice(tenant, invoice["id"])
    assert stopped["collection"]["reason_code"] == "mandate_cancelled"
    assert stopped["pay_link"] is not None  # a cancelled mandate: offered a pay link instead
    await harness.tap.wait_for("sync.paylink_requested", tenant=tenant)


async def test_no_mandate_gets_a_pay_link_and_signing_through_it_collects_later_invoices(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    invoice = await harness.post_invoice(tenant, customer_number="C-9", amount_cents=2500)
    assert invoice["status"] == "skipped"
    assert invoice["collection"]["reason_code"] == "no_mandate"
    assert invoice["pay_link"]["state"] == "requested"
    [request] = await harness.tap.wait_for("sync.paylink_requested", tenant=tenant)
    assert request.data["amount_cents"] == 2500 and request.data["customer"]["customer_number"] == "C-9"
    reference = request.data["reference"]

    await harness.publish(
        new_event(
            TwikeyPaylinkCreated(reference=reference, paylink_id="PL-1", url="https://pay.example/PL-1"),
            tenant_id=tenant,
        )
    )
    linked = await harness.invoice_eventually(tenant, invoice["id"], lambda i: i["pay_link"]["url"] is not None)
    assert linked["pay_link"]["url"] == "https://pay.example/PL-1"

    changed = new_event(
        TwikeyPaylinkChanged(
            twikey_event_id="paylink/1",
            feed_seq=1,
            paylink_id="PL-1",
            reference=reference,
            state="paid",
            amount_cents=2500,
            mandate_number="KOP-PL",
        ),
        tenant_id=tenant,
    )
    await harness.publish(changed)
    paid = await harness.invoice_eventually(tenant, invoice["id"], lambda i: i["status"] == "paid")
    assert paid["collection"]["method"] == "paylink"
    [event] = await harness.tap.wait_for("collection.paid", invoice_id=invoice["id"])
    assert event.data["method"] == "paylink" and event.data["amount_cents"] == 2500

    # replaying the pay-link message with a new id pays nothing twice
    again = new_event(TwikeyPaylinkChanged(**changed.data), tenant_id=tenant)
    await harness.publish(again)
    await harness.handled(again)
    assert len(harness.tap.of_type("collection.paid", invoice_id=invoice["id"])) == 1

    later = await harness.post_invoice(tenant, customer_number="C-9")
    assert later["status"] == "scheduled" and later["collection"]["mandate_number"] == "KOP-PL"


async def test_signing_a_mandate_schedules_the_customers_open_invoices(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    await harness.client.put(
        "/v1/collection-policy",
        json={"paylink_when_no_mandate": False, "lead_days": 2},
        headers=harness.headers(tenant),
    )
    invoice = await harness.post_invoice(tenant, customer_number="C-7")
    assert invoice["collection"]["reason_code"] == "no_mandate" and invoice["pay_link"] is None
    await harness.sign_mandate(tenant, "C-7", "KOP-7")
    scheduled = await harness.invoice(tenant, invoice["id"])
    assert scheduled["status"] == "scheduled" and scheduled["collection"]["collect_on"] == "2026-02-13"
    assert scheduled["collection"]["mandate_number"] == "KOP-7"


async def test_invoices_above_the_tenant_or_debtor_limit_are_skipped_with_reason(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    headers = harness.headers(tenant)
    policy = await harness.client.put("/v1/collection-policy", json={"max_amount_cents": 50_000}, headers=headers)
    assert policy.status_code == 200 and policy.json()["version"] == 1
    await harness.sign_mandate(tenant, "C-1", "KOP-1", max_amount_cents=20_000)
    at_debtor = await harness.post_invoice(tenant, amount_cents=20_000)
    above_debtor = await harness.post_invoice(tenant, amount_cents=20_001)
    above_tenant = await harness.post_invoice(tenant, amount_cents=50_001)
    assert at_debtor["status"] == "scheduled"
    assert above_debtor["collection"]["reason_code"] == "above_mandate_limit"
    assert above_tenant["collection"]["reason_code"] == "above_tenant_limit"
    assert "€500.00" in above_tenant["collection"]["reason"]


async def test_subscription_invoice_is_claimed_as_soon_as_it_is_created(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    headers = harness.headers(tenant)
    await harness.client.put("/v1/collection-policy", json={"auto_collect": False}, headers=headers)
    await harness.sign_mandate(tenant, "C-1", "KOP-1")
    sub = await harness.client.post(
        "/v1/subscriptions", json={"reference": "SUB-1", "customer_number": "C-1"}, headers=headers
    )
    assert sub.status_code == 201
    plain = await harness.post_invoice(tenant)
    assert plain["collection"]["reason_code"] == "auto_collect_off"
    claimed = await harness.post_invoice(tenant, subscription_reference="SUB-1")
    assert claimed["collection"]["reason_code"] == "subscription"
    assert claimed["collection"]["collect_on"] == "2026-02-01"
    item = await submitted_item(harness, tenant, claimed["id"], claimed["collection"]["collection_id"])
    assert item["requested_date"] == "2026-02-12"


async def test_withdraw_before_submission_and_collect_now_by_hand(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    headers = harness.headers(tenant)
    await harness.sign_mandate(tenant, "C-1", "KOP-1")
    first = await harness.post_invoice(tenant)
    withdrawn = await harness.client.delete(f"/v1/invoices/{first['id']}", headers=headers)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "withdrawn"
    await harness.tap.wait_for(
        "collection.skipped", collection_id=first["collection"]["collection_id"], status="withdrawn"
    )

    second = await harness.post_invoice(tenant)
    collected = await harness.client.post(f"/v1/invoices/{second['id']}/collect", headers=headers)
    assert collected.status_code == 200, collected.text
    assert collected.json()["collection"]["reason_code"] == "manual"
    await submitted_item(harness, tenant, second["id"], second["collection"]["collection_id"])
    too_late = await harness.client.delete(f"/v1/invoices/{second['id']}", headers=headers)
    assert too_late.status_code == 409 and too_late.json()["code"] == "collection_in_progress"
    again = await harness.client.post(f"/v1/invoices/{second['id']}/collect", headers=headers)
    assert again.status_code == 409 and again.json()["code"] == "already_collected"


async def test_collection_events_carry_a_growing_version(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 4, 1))
    await harness.sign_mandate(tenant, "C-1", "KOP-1")
    invoice = await harness.post_invoice(tenant, invoice_date="2026-04-01", due_date="2026-04-01")
    cid = invoice["collection"]["collection_id"]
    await submitted_item(harness, tenant, invoice["id"], cid)
    await harness.publish(
        new_event(
            TwikeyTransactionCreated(
                collection_id=cid, transaction_id="9001", mandate_number="KOP-1", amount_cents=4999
            ),
            tenant_id=tenant,
        )
    )
    await harness.tap.wait_for("collection.submitted", collection_id=cid)
    await harness.publish(tx_changed(tenant, cid, "9001", 1, "PAID"))
    await harness.tap.wait_for("collection.paid", collection_id=cid)
    published = [m for m in harness.tap.messages if m.data.get("collection_id") == cid]
    # v2 is the hand-off to sync-svc (not published: collection.submitted follows Twikey's answer)
    assert [(m.type, m.data["version"]) for m in sorted(published, key=lambda m: m.data["version"])] == [
        ("collection.scheduled", 1),
        ("collection.submitted", 3),
        ("collection.paid", 4),
    ]
    async with harness.engine.connect() as conn:
        count = (
            await conn.execute(sa.text("SELECT count(*) FROM outbox WHERE body LIKE :cid"), {"cid": f"%{cid}%"})
        ).scalar_one()
    assert count == 4  # scheduled, the command, submitted, paid


async def test_paid_before_the_created_answer_still_pays_once_and_keeps_the_transaction_id(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 5, 1))
    await harness.sign_mandate(tenant, "C-1", "KOP-1")
    invoice = await harness.post_invoice(tenant, invoice_date="2026-05-01", due_date="2026-05-01")
    cid = invoice["collection"]["collection_id"]
    await submitted_item(harness, tenant, invoice["id"], cid)
    paid = tx_changed(tenant, cid, "8001", 3, "PAID")
    await harness.publish(paid)
    await harness.handled(paid)
    created = new_event(
        TwikeyTransactionCreated(collection_id=cid, transaction_id="8001", mandate_number="KOP-1", amount_cents=4999),
        tenant_id=tenant,
    )
    await harness.publish(created)
    await harness.handled(created)
    final = await harness.invoice(tenant, invoice["id"])
    assert final["status"] == "paid" and final["collection"]["twikey_transaction_id"] == "8001"
    assert len(harness.tap.of_type("collection.paid", collection_id=cid)) == 1
    assert harness.tap.of_type("collection.submitted", collection_id=cid) == []


async def test_a_late_paid_after_a_failure_withdraws_the_planned_retry(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 6, 1))
    await harness.sign_mandate(tenant, "C-1", "KOP-1")
    invoice = await harness.post_invoice(tenant, invoice_date="2026-06-01", due_date="2026-06-01")
    cid = invoice["collection"]["collection_id"]
    await submitted_item(harness, tenant, invoice["id"], cid)
    failed = tx_changed(tenant, cid, "6001", 1, "ERROR", bank_error="AM04")
    await harness.publish(failed)
    await harness.handled(failed)
    retry = (await harness.invoice(tenant, invoice["id"]))["attempts"][1]
    assert retry["status"] == "scheduled"
    late = tx_changed(tenant, cid, "6001", 2, "PAID")
    await harness.publish(late)
    await harness.handled(late)
    final = await harness.invoice(tenant, invoice["id"])
    first, second = final["attempts"]
    assert first["status"] == "paid"
    assert second["status"] == "withdrawn" and second["reason_code"] == "superseded"
    assert final["status"] == "paid" and final["collection"]["collection_id"] == cid


async def test_a_reversal_for_insufficient_funds_reopens_the_invoice_and_retries_it(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 7, 1))
    await harness.sign_mandate(tenant, "C-1", "KOP-1")
    invoice = await harness.post_invoice(tenant, invoice_date="2026-07-01", due_date="2026-07-01")
    cid = invoice["collection"]["collection_id"]
    await submitted_item(harness, tenant, invoice["id"], cid)
    for message in (
        tx_changed(tenant, cid, "4001", 1, "PAID"),
        tx_changed(tenant, cid, "4001", 2, "ERROR", bank_error="AM04", reversal=True),
    ):
        await harness.publish(message)
        await harness.handled(message)
    final = await harness.invoice(tenant, invoice["id"])
    first, second = final["attempts"]
    assert first["status"] == "reversed" and first["r_code"] == "AM04"
    assert second["status"] == "scheduled" and second["collect_on"] == "2026-07-06"
    assert len(harness.tap.of_type("collection.paid", collection_id=cid)) == 1
    await harness.tap.wait_for("collection.reversed", collection_id=cid)


async def test_a_lower_debtor_limit_stops_a_scheduled_invoice_above_it(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    await harness.sign_mandate(tenant, "C-1", "KOP-1", version=1)
    invoice = await harness.post_invoice(tenant, amount_cents=30_000)
    assert invoice["status"] == "scheduled"
    await harness.sign_mandate(tenant, "C-1", "KOP-1", version=2, max_amount_cents=25_000, event=MandateUpdated)
    held = await harness.invoice(tenant, invoice["id"])
    assert held["status"] == "skipped" and held["collection"]["reason_code"] == "above_mandate_limit"


async def test_a_message_that_cannot_be_applied_is_parked_and_does_not_block_the_others(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 8, 1))
    await harness.sign_mandate(tenant, "C-1", "KOP-1")
    invoice = await harness.post_invoice(tenant, invoice_date="2026-08-01", due_date="2026-08-01")
    cid = invoice["collection"]["collection_id"]
    await submitted_item(harness, tenant, invoice["id"], cid)
    async with harness.engine.begin() as conn:
        # staged as if a consumer had taken it in, but missing what applying it needs
        await conn.execute(
            sa.text(
                "INSERT INTO twikey_updates (tenant_id, event_id, event_type, data)"
                " VALUES (:t, :e, 'twikey.transaction.changed', CAST(:d AS jsonb))"
            ),
            {"t": tenant, "e": uuid.uuid4(), "d": '{"state": "PAID"}'},
        )
    good = tx_changed(tenant, cid, "3001", 1, "PAID")
    await harness.publish(good)
    await harness.handled(good)
    assert (await harness.invoice(tenant, invoice["id"]))["status"] == "paid"
    async with harness.engine.connect() as conn:
        parked = (
            await conn.execute(sa.text("SELECT error FROM twikey_updates WHERE tenant_id = :t"), {"t": tenant})
        ).scalar_one()
    assert "validation error" in parked.lower()


def _operator(harness: Any, tenant_id: uuid.UUID) -> dict[str, str]:
    token = issue_token(TEST_SIGNING_KEY, tenant_id, ["operator"])
    return {"Authorization": f"Bearer {token}"}


async def _parked_gauge(harness: Any) -> float:
    text = (await harness.client.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith('koppel_parked_messages{service="collection"}'))
    return float(line.split()[-1])


async def test_a_parked_update_is_listed_counted_and_applied_once_an_operator_retries_it(harness: Any) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    harness.clock.set_date(date(2026, 9, 1))
    await harness.sign_mandate(tenant, "C-1", "KOP-1")
    invoice = await harness.post_invoice(tenant, invoice_date="2026-09-01", due_date="2026-09-01")
    cid = invoice["collection"]["collection_id"]
    await submitted_item(harness, tenant, invoice["id"], cid)  # at Twikey, waiting for the feed
    paid = tx_changed(tenant, cid, "4001", 1, "PAID")
    async with harness.engine.begin() as conn:  # parked by an earlier failure that has since gone away
        seq = (
            await conn.execute(
                sa.text(
                    "INSERT INTO twikey_updates (tenant_id, event_id, event_type, data, failed_at, error)"
                    " VALUES (:t, :e, :type, CAST(:d AS jsonb), now(), 'deadlock detected') RETURNING seq"
                ),
                {"t": tenant, "e": paid.id, "type": paid.type, "d": json.dumps(paid.data)},
            )
        ).scalar_one()
    url = "/v1/parked-updates"
    assert (await harness.client.get(url, headers=harness.headers(tenant))).status_code == 403  # ERP token
    listed = await harness.client.get(url, headers=_operator(harness, tenant))
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert (item["seq"], item["event_type"], item["error"]) == (seq, "twikey.transaction.changed", "deadlock detected")
    assert (await harness.client.get(url, headers=_operator(harness, other))).json()["items"] == []
    assert await _parked_gauge(harness) >= 1

    retry = f"{url}/retry"
    for body, status, code in [
        ({}, 422, "seqs_or_all"),
        ({"seqs": [seq], "all": True}, 422, "seqs_or_all"),
        ({"seqs": ["1"]}, 422, "validation_error"),
        ({"seqs": [seq, seq + 10_000_000]}, 404, "not_parked"),  # all or nothing
    ]:
        r = await harness.client.post(retry, json=body, headers=_operator(harness, tenant))
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
    r = await harness.client.post(retry, json={"seqs": [seq]}, headers=_operator(harness, other))
    assert (r.status_code, r.json()["code"]) == (404, "not_parked")  # another tenant's stays parked
    assert [i["seq"] for i in (await harness.client.get(url, headers=_operator(harness, tenant))).json()["items"]] == [
        seq
    ]
    assert (await harness.invoice(tenant, invoice["id"]))["status"] == "submitted"

    r = await harness.client.post(retry, json={"seqs": [seq]}, headers=_operator(harness, tenant))
    assert r.status_code == 200 and r.json() == {"retried": [seq]}, r.text
    await harness.invoice_eventually(tenant, invoice["id"], lambda i: i["status"] == "paid")
    assert (await harness.client.get(url, headers=_operator(harness, tenant))).json()["items"] == []
    r = await harness.client.post(retry, json={"all": True}, headers=_operator(harness, tenant))
    assert r.json() == {"retried": []}
