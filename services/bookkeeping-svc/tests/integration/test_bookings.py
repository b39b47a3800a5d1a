"""paid → booked → matched through the real broker, database and Twinfield sandbox."""

from __future__ import annotations

import uuid

import pytest

from koppel_shared.events.collection import CollectionReversed
from koppel_shared.testing.waiting import eventually

from .conftest import Sandbox, Service, outbox_types, paid, wait_status

pytestmark = pytest.mark.integration

LONG_INVOICE = "ORDER-2025-" + "ABCDEFGHIJ" * 3 + "-0042"  # 46 characters
LONG_TX = "TX" + "1234567890" * 4  # 42 characters


async def test_paid_collection_is_booked_and_matched_with_the_exact_lines(service: Service, twinfield: Sandbox) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    invoice = twinfield.seed_invoice("1001", LONG_INVOICE[-40:], 12100)
    data = paid(LONG_INVOICE, tx=LONG_TX)
    await service.publish(data, tenant)

    booking = await wait_status(service, tenant, "matched")
    assert booking["memo_number"] and booking["sales_number"] == str(invoice["number"])
    assert booking["customer_code"] == "1001"

    (memo,) = twinfield.memos()
    line1, line2 = memo["lines"]
    description = LONG_INVOICE[:40]  # the invoice (order) number's first 40, as users know it
    assert (line1["dim1"], line1["debitcredit"], line1["value"], line1["description"]) == (
        "1105",
        "debit",
        "121.00",
        description,
    )
    assert line1["dim2"] in (None, "")
    assert (line2["dim1"], line2["dim2"], line2["debitcredit"], line2["value"]) == ("1300", "1001", "credit", "121.00")
    assert line2["invoicenumber"] == LONG_INVOICE[-40:]
    assert line2["description"] == description
    assert line2["matchstatus"] == "matched"
    sale = twinfield.control("GET", f"/offices/NLA000001/transactions/VRK/{invoice['number']}")
    assert sale["lines"][0]["matchstatus"] == "matched"

    await eventually(lambda: _has(service, booking["id"], "booking.booked"), within=10)
    tab = await service.booking(tenant, "booked")
    assert tab is not None and tab["id"] == booking["id"]


async def _has(service: Service, booking_id: str, event_type: str) -> bool:
    return event_type in await outbox_types(service, booking_id)


async def test_missing_invoice_lands_on_errors_list_then_seeded_and_retried_is_booked(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    await service.publish(paid("F2025-0777", 5000), tenant)

    failed = await wait_status(service, tenant, "error")
    assert failed["more_info"]["code"] == "invoice_not_found"
    assert "F2025-0777" in failed["more_info"]["message"]
    assert failed["more_info"]["hint"]
    detail = await service.api.get(f"/v1/bookings/{failed['id']}", headers=service.headers(tenant))
    assert detail.json()["more_info"]["code"] == "invoice_not_found"
    assert (await service.booking(tenant, "error"))["id"] == failed["id"]  # type: ignore[index]
    await eventually(lambda: _has(service, failed["id"], "booking.failed"), within=10)
    assert twinfield.memos() == []

    twinfield.seed_invoice("1001", "F2025-0777", 5000)
    reply = await service.api.post(f"/v1/bookings/{failed['id']}/retry", headers=service.headers(tenant))
    assert reply.status_code == 200, reply.text
    booked = await wait_status(service, tenant, "matched")
    assert booked["id"] == failed["id"]
    assert len(twinfield.memos()) == 1


async def test_duplicate_collection_paid_never_books_twice(service: Service, twinfield: Sandbox) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    twinfield.seed_invoice("1001", "F2025-0100", 12100)
    data = paid("F2025-0100")
    first = await service.publish(data, tenant)
    await service.publish(data, tenant, id=first.id)  # redelivery of the same envelope
    await service.publish(data, tenant)  # the same collection in a new envelope (feed reset)
    again = data.model_copy(update={"collection_id": str(uuid.uuid4())})
    await service.publish(again, tenant)  # another collection id, same Twikey transaction

    await wait_status(service, tenant, "matched")
    reply = await service.api.get("/v1/bookings", headers=service.headers(tenant))
    assert len(reply.json()["items"]) == 1
    assert len(twinfield.memos()) == 1


async def test_timeout_after_the_write_is_looked_up_and_not_posted_again(service: Service, twinfield: Sandbox) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    twinfield.seed_invoice("1001", "F2025-0200", 12100)
    twinfield.control(
        "POST",
        "/faults",
        json={"operation": "transactions", "kind": "timeout", "when": "after", "delay_seconds": 3, "count": 1},
    )
    await service.publish(paid("F2025-0200"), tenant)

    await wait_status(service, tenant, "matched", within=30)
    faults = twinfield.control("GET", "/faults")
    assert faults[0]["fired"] == 1
    assert len(twinfield.memos()) == 1


async def test_reversed_collection_books_a_counter_memo_and_reopens_the_receivable(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    twinfield.seed_invoice("1001", "F2025-0300", 12100)
    data = paid("F2025-0300")
    await service.publish(data, tenant)
    booking = await wait_status(service, tenant, "matched")

    reversed_ = CollectionReversed(**{**data.model_dump(), "status": "reversed", "r_code": "MD06", "version": 4})
    await service.publish(reversed_, tenant)
    done = await wait_status(service, tenant, "reversed")
    assert done["reversal_memo_number"]

    memos = {m["number"]: m for m in twinfield.memos()}
    assert len(memos) == 2
    counter = memos[int(done["reversal_memo_number"])]
    cross, customer = counter["lines"]
    assert (cross["dim1"], cross["debitcredit"]) == ("1105", "credit")
    assert (customer["dim1"], customer["dim2"], customer["debitcredit"]) == ("1300", "1001", "debit")
    assert customer["invoicenumber"] == "F2025-0300" and customer["matchstatus"] == "available"
    assert customer["open"] in ("121.00", "-121.00") or customer["open"]
    await eventually(lambda: _has(service, booking["id"], "booking.reversed"), within=10)


async def test_reversal_before_booking_closes_it_without_a_memo(service: Service, twinfield: Sandbox) -> None:
    tenant = uuid.uuid4()
    data = paid("F2025-0301")
    reversed_ = CollectionReversed(**{**data.model_dump(), "status": "reversed", "version": 4})
    await service.publish(reversed_, tenant)
    await wait_status(service, tenant, "reversed")
    await service.publish(data, tenant)  # a late paid for the same collection changes nothing
    await service.connect(tenant, twinfield)
    reply = await service.api.get("/v1/bookings", headers=service.headers(tenant))
    assert [b["status"] for b in reply.json()["items"]] == ["reversed"]
    assert twinfield.memos() == []


async def test_another_tenants_booking_is_not_found(service: Service, twinfield: Sandbox) -> None:
    tenant = uuid.uuid4()
    await service.publish(paid("F2025-0400"), tenant)

    async def present() -> bool:
        return await service.booking(tenant) is not None

    await eventually(present, within=10)
    mine = await service.booking(tenant)
    assert mine is not None
    other = uuid.uuid4()
    reply = await service.api.get(f"/v1/bookings/{mine['id']}", headers=service.headers(other))
    assert reply.status_code == 404
    reply = await service.api.post(f"/v1/bookings/{mine['id']}/retry", headers=service.headers(other))
    assert reply.status_code == 404


async def test_an_invoice_number_open_at_two_customers_is_decided_by_the_customer_email(
    service: Service, twinfield: Sandbox
) -> None:
    # One invoice number open twice: in the sales daybook and in a second one, at two customers.
    twinfield.control(
        "POST", "/offices/NLA000001/daybooks", json={"code": "VRK2", "name": "Verkoop 2", "kind": "sales"}
    )
    twinfield.seed_customer("2001", "boekhouding@alfa.nl", name="Alfa")
    twinfield.seed_customer("2002", "info@beta.nl", name="Beta")
    for customer, daybook in (("2001", "VRK"), ("2002", "VRK2")):
        twinfield.control(
            "POST",
            "/offices/NLA000001/invoices",
            json={
                "invoices": [
                    {"customer": customer, "invoice_number": number, "amount_cents": 12100, "daybook": daybook}
                    for number in ("F2025-0900", "F2025-0901")
                ]
            },
        )
    decided, undecided = uuid.uuid4(), uuid.uuid4()
    await service.connect(decided, twinfield)
    await service.connect(undecided, twinfield)
    # Neither customer code is the payer's: the e-mail on the Twinfield customer decides.
    await service.publish(paid("F2025-0900", customer_number="9999", customer_email="INFO@beta.nl"), decided)
    await service.publish(paid("F2025-0901", customer_number="9999", customer_email="nobody@example.nl"), undecided)

    booking = await wait_status(service, decided, "matched")
    assert booking["customer_code"] == "2002"
    failed = await wait_status(service, undecided, "error")
    assert failed["more_info"]["code"] == "ambiguous_invoice"
    assert len(twinfield.memos()) == 1


async def test_a_second_payment_of_one_invoice_whose_post_timed_out_finds_its_own_memo_not_the_first(
    service: Service, twinfield: Sandbox
) -> None:
    """Both MEMOs carry the invoice number as their text: the look-up after the timeout must not
    take the first payment's MEMO (its booking keeps that number) for the second one's."""
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    twinfield.seed_invoice("1001", "F2025-0400", 12100)
    first = paid("F2025-0400")
    await service.publish(first, tenant)
    await wait_status(service, tenant, "matched")
    reversed_ = CollectionReversed(**{**first.model_dump(), "status": "reversed", "r_code": "MD06", "version": 4})
    await service.publish(reversed_, tenant)
    undone = await wait_status(service, tenant, "reversed")
    twinfield.control(
        "POST",
        "/faults",
        json={"operation": "transactions", "kind": "timeout", "when": "after", "delay_seconds": 3, "count": 1},
    )
    await service.publish(paid("F2025-0400"), tenant)

    second = await wait_status(service, tenant, "matched", within=30)
    assert twinfield.control("GET", "/faults")[0]["fired"] == 1
    payments = [m for m in twinfield.memos() if m["lines"][1]["debitcredit"] == "credit"]
    assert len(payments) == 2 and len(twinfield.memos()) == 3  # two payments and one counter MEMO
    assert {second["memo_number"], undone["memo_number"]} == {str(m["number"]) for m in payments}
    assert {m["lines"][1]["description"] for m in payments} == {"F2025-0400"}
