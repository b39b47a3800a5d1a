"""Payment identity in collection-svc: Twikey numbers transactions and pay links separately, so a
transaction feed message never touches a pay-link collection with the same number, and every
collection event names its payment's kind and Twikey id."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest

from koppel_shared.events import new_event
from koppel_shared.events.twikey import TwikeyPaylinkChanged, TwikeyPaylinkCreated

from .test_collection_flow import submitted_item, tx_changed

pytestmark = pytest.mark.integration

NUMBER = "5001"  # the pay link's id, and a transaction's id in Twikey's other numbering


async def paid_by_paylink(harness: Any, tenant: uuid.UUID, customer_number: str) -> dict[str, Any]:
    invoice = await harness.post_invoice(tenant, customer_number=customer_number, amount_cents=2500)
    [request] = await harness.tap.wait_for("sync.paylink_requested", tenant=tenant)
    reference = request.data["reference"]
    created = TwikeyPaylinkCreated(reference=reference, paylink_id=NUMBER, url=f"https://pay.example/{NUMBER}")
    await harness.publish(new_event(created, tenant_id=tenant))
    await harness.invoice_eventually(tenant, invoice["id"], lambda i: i["pay_link"]["url"] is not None)
    changed = TwikeyPaylinkChanged(
        twikey_event_id=f"paylink/{NUMBER}",
        feed_seq=1,
        paylink_id=NUMBER,
        reference=reference,
        state="paid",
        amount_cents=2500,
    )
    await harness.publish(new_event(changed, tenant_id=tenant))
    return await harness.invoice_eventually(tenant, invoice["id"], lambda i: i["status"] == "paid")


async def test_a_transaction_with_the_number_of_a_paid_pay_link_does_not_touch_the_pay_link(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    link_invoice = await paid_by_paylink(harness, tenant, "C-9")
    # Twikey's transaction 5001 (someone else's collection, not ours) fails after it was paid.
    foreign = tx_changed(tenant, "not-a-koppel-reference", NUMBER, 7, "ERROR", amount_cents=2500, reversal=True)
    await harness.publish(foreign)
    await harness.handled(foreign)
    after = await harness.invoice(tenant, link_invoice["id"])
    assert after["status"] == "paid" and after["collection"]["method"] == "paylink"
    assert harness.tap.of_type("collection.reversed", invoice_id=link_invoice["id"]) == []
    [paid] = harness.tap.of_type("collection.paid", invoice_id=link_invoice["id"])
    assert (paid.data["payment_kind"], paid.data["twikey_id"]) == ("paylink", NUMBER)
    assert paid.data["twikey_transaction_id"] is None


async def test_a_direct_debit_with_the_same_number_is_paid_as_its_own_payment(harness: Any) -> None:
    tenant = uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    link_invoice = await paid_by_paylink(harness, tenant, "C-9")
    await harness.sign_mandate(tenant, "C-1", "KOP-1", max_amount_cents=1_000_000)
    invoice = await harness.post_invoice(
        tenant, customer_number="C-1", invoice_date="2026-02-01", due_date="2026-02-01", amount_cents=500_000
    )
    cid = invoice["collection"]["collection_id"]
    await submitted_item(harness, tenant, invoice["id"], cid)
    # The feed's answer carries only the transaction id (the reference is not in this message).
    message = tx_changed(tenant, cid, NUMBER, 8, "PAID", amount_cents=500_000)
    await harness.publish(message)
    await harness.handled(message)

    [paid] = await harness.tap.wait_for("collection.paid", invoice_id=invoice["id"])
    assert (paid.data["payment_kind"], paid.data["twikey_id"]) == ("transaction", NUMBER)
    assert paid.data["twikey_transaction_id"] == NUMBER
    assert (await harness.invoice(tenant, link_invoice["id"]))["status"] == "paid"
    assert len(harness.tap.of_type("collection.paid", invoice_id=link_invoice["id"])) == 1
    # The ERP's view names each payment by kind and id, too.
    views = [(await harness.invoice(tenant, i))["collection"] for i in (link_invoice["id"], invoice["id"])]
    identities = [(c["payment_kind"], c["twikey_id"], c["twikey_transaction_id"]) for c in views]
    assert identities == [("paylink", NUMBER, None), ("transaction", NUMBER, NUMBER)]
