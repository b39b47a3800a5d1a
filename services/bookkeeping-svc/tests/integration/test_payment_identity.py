"""Payment identity: a paid item is (tenant, kind, Twikey id). Twikey numbers pay links and
transactions separately, so the same number paid once each way is two payments, both booked and
matched; a repeat with the same facts is a harmless duplicate; a repeat with other facts is a
conflict on the operator's errors list, never a log line."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from koppel_shared.events.collection import CollectionReversed
from koppel_shared.testing.waiting import eventually

from .conftest import Sandbox, Service, outbox_types, paid, wait_bookings

pytestmark = pytest.mark.integration

NUMBER = "4711"  # a pay link and a transaction with the same Twikey number


def paylink_paid(
    invoice_number: str, amount_cents: int, paylink_id: str = NUMBER, style: str = "kinds", **extra: Any
) -> Any:
    """A paid pay link as collection-svc publishes it: kind ``paylink``, no transaction id; or,
    ``style="before_kinds"``, as it did before payment kinds existed (the pay-link id in
    ``twikey_transaction_id``, the kind only in ``method``)."""
    values: dict[str, Any] = {"method": "paylink", "payment_kind": "paylink", "twikey_id": paylink_id}
    values["twikey_transaction_id"] = paylink_id if style == "before_kinds" else None
    if style == "before_kinds":
        values.update(payment_kind=None, twikey_id=None)
    values.update(extra)
    return paid(invoice_number, amount_cents, **values)


STYLES = pytest.mark.parametrize("style", ["kinds", "before_kinds"])


def memo_texts(twinfield: Sandbox) -> set[tuple[str, str]]:
    """(cross-account, description) of every MEMO: the kinds are told apart by their accounts."""
    return {(memo["lines"][0]["dim1"], memo["lines"][0]["description"]) for memo in twinfield.memos()}


@STYLES
async def test_paid_paylink_then_direct_debit_with_the_same_number_are_both_booked_and_matched(
    service: Service, twinfield: Sandbox, style: str
) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    sale_link = twinfield.seed_invoice("1001", "F2025-1000", 12100)
    sale_debit = twinfield.seed_invoice("1001", "F2025-1001", 500000)
    await service.publish(paylink_paid("F2025-1000", 12100, style=style), tenant)
    await service.publish(paid("F2025-1001", 500000, tx=NUMBER), tenant)

    booked = await wait_bookings(service, tenant, "matched", 2)
    by_invoice = {b["invoice_number"]: b for b in booked}
    assert by_invoice["F2025-1000"]["sales_number"] == str(sale_link["number"])
    assert by_invoice["F2025-1001"]["sales_number"] == str(sale_debit["number"])
    assert {(b["payment_kind"], b["twikey_id"]) for b in booked} == {("paylink", NUMBER), ("transaction", NUMBER)}
    assert by_invoice["F2025-1000"]["twikey_transaction_id"] is None
    assert memo_texts(twinfield) == {("1110", "F2025-1000"), ("1105", "F2025-1001")}
    for sale in (sale_link, sale_debit):
        line = twinfield.control("GET", f"/offices/NLA000001/transactions/VRK/{sale['number']}")["lines"][0]
        assert line["matchstatus"] == "matched"
    assert (await service.bookings(tenant, "error"))["conflicts"] == []


@STYLES
async def test_paid_direct_debit_then_paylink_with_the_same_number_are_both_booked_and_matched(
    service: Service, twinfield: Sandbox, style: str
) -> None:
    """The reverse order, the direct debit of € 5,000.00 first."""
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    twinfield.seed_invoice("1001", "F2025-1100", 500000)
    twinfield.seed_invoice("1001", "F2025-1101", 12100)
    await service.publish(paid("F2025-1100", 500000, tx=NUMBER), tenant)
    await wait_bookings(service, tenant, "matched", 1)
    await service.publish(paylink_paid("F2025-1101", 12100, style=style), tenant)

    booked = await wait_bookings(service, tenant, "matched", 2)
    assert {(b["payment_kind"], b["twikey_id"], b["amount_cents"]) for b in booked} == {
        ("transaction", NUMBER, 500000),
        ("paylink", NUMBER, 12100),
    }
    assert len(twinfield.memos()) == 2
    assert memo_texts(twinfield) == {("1105", "F2025-1100"), ("1110", "F2025-1101")}


async def test_the_same_payment_twice_is_one_booking_and_no_conflict(service: Service, twinfield: Sandbox) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    twinfield.seed_invoice("1001", "F2025-1200", 12100)
    data = paylink_paid("F2025-1200", 12100)
    await service.publish(data, tenant)
    await service.publish(data, tenant)  # a new envelope with the same facts (feed reset)
    await service.publish(data.model_copy(update={"collection_id": str(uuid.uuid4())}), tenant)

    await wait_bookings(service, tenant, "matched", 1)
    errors = await service.bookings(tenant, "error")
    assert errors["items"] == [] and errors["conflicts"] == []
    assert len(twinfield.memos()) == 1


async def test_a_reversal_announced_by_the_duplicate_collection_reverses_the_booking(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    twinfield.seed_invoice("1001", "F2025-1250", 12100)
    data = paid("F2025-1250", 12100, tx=NUMBER)
    await service.publish(data, tenant)
    await wait_bookings(service, tenant, "matched", 1)
    duplicate = data.model_copy(update={"collection_id": str(uuid.uuid4())})
    await service.publish(duplicate, tenant)
    reversed_ = CollectionReversed(**{**duplicate.model_dump(), "status": "reversed", "r_code": "MD06", "version": 4})
    await service.publish(reversed_, tenant)

    (done,) = await wait_bookings(service, tenant, "reversed", 1)
    assert done["collection_id"] == data.collection_id and done["reversal_memo_number"]
    assert len(twinfield.memos()) == 2


async def _open_conflicts(service: Service, tenant: uuid.UUID, count: int) -> list[dict[str, Any]]:
    found: list[Any] = [[]]

    async def check() -> bool:
        found[0] = (await service.bookings(tenant, "error"))["conflicts"]
        return len(found[0]) == count

    await eventually(check, within=15)
    return list(found[0])


async def test_same_payment_with_another_amount_is_a_conflict_with_both_records(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    twinfield.seed_invoice("1001", "F2025-1300", 12100)
    first = paid("F2025-1300", 12100, tx=NUMBER)
    await service.publish(first, tenant)
    (existing,) = await wait_bookings(service, tenant, "matched", 1)
    other = paid("F2025-1300", 13100, tx=NUMBER, invoice_id=first.invoice_id)  # the same, another amount
    await service.publish(other, tenant)

    (conflict,) = await _open_conflicts(service, tenant, 1)
    assert conflict["code"] == "payment_conflict"
    assert conflict["status"] == "open"
    assert conflict["differences"] == ["amount"]
    assert (conflict["payment_kind"], conflict["twikey_id"]) == ("transaction", NUMBER)
    assert conflict["existing"]["id"] == existing["id"] and conflict["existing"]["amount_cents"] == 12100
    assert conflict["incoming"]["collection_id"] == other.collection_id
    assert conflict["incoming"]["amount_cents"] == 13100
    assert conflict["hint"]
    status = await service.api.get("/v1/twinfield/connection", headers=service.headers(tenant))
    assert status.json()["bookings"]["conflicts"] == 1
    await eventually(lambda: _has(service, conflict["id"], "booking.conflict"), within=10)
    # The same conflicting message again (a feed reset) is the same conflict, not a second one.
    await service.publish(other, tenant)
    await service.publish(first, tenant)  # and the original is still a duplicate
    assert len(await _open_conflicts(service, tenant, 1)) == 1
    assert len((await service.bookings(tenant))["items"]) == 1
    assert len(twinfield.memos()) == 1

    # Resolved by an operator: dismissed with a note, then off the errors list.
    headers = service.headers(tenant)
    reply = await service.api.post(f"/v1/bookings/conflicts/{conflict['id']}/dismiss", json={}, headers=headers)
    assert reply.status_code == 422, reply.text
    reply = await service.api.post(
        f"/v1/bookings/conflicts/{conflict['id']}/dismiss",
        json={"note": "amount corrected at the ERP"},
        headers=headers,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "dismissed" and reply.json()["note"] == "amount corrected at the ERP"
    assert (await service.bookings(tenant, "error"))["conflicts"] == []
    again = await service.api.post(
        f"/v1/bookings/conflicts/{conflict['id']}/dismiss", json={"note": "twice"}, headers=headers
    )
    assert again.status_code == 409 and again.json()["code"] == "conflict_resolved"


async def test_same_payment_for_another_invoice_is_a_conflict_an_operator_can_book(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    twinfield.seed_invoice("1001", "F2025-1400", 12100)
    other_sale = twinfield.seed_invoice("1001", "F2025-1401", 12100)
    await service.publish(paylink_paid("F2025-1400", 12100), tenant)
    await wait_bookings(service, tenant, "matched", 1)
    await service.publish(paylink_paid("F2025-1401", 12100), tenant)

    (conflict,) = await _open_conflicts(service, tenant, 1)
    assert conflict["differences"] == ["invoice"]
    assert conflict["existing"]["invoice_number"] == "F2025-1400"
    assert conflict["incoming"]["invoice_number"] == "F2025-1401"
    other = uuid.uuid4()
    hidden = await service.api.post(f"/v1/bookings/conflicts/{conflict['id']}/book", headers=service.headers(other))
    assert hidden.status_code == 404

    reply = await service.api.post(
        f"/v1/bookings/conflicts/{conflict['id']}/book",
        json={"note": "a second payment"},
        headers=service.headers(tenant),
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "booked" and reply.json()["resolved_booking_id"]
    booked = await wait_bookings(service, tenant, "matched", 2)
    extra = next(b for b in booked if b["invoice_number"] == "F2025-1401")
    assert extra["sales_number"] == str(other_sale["number"])
    assert len(twinfield.memos()) == 2 and len(memo_texts(twinfield)) == 2
    assert (await service.bookings(tenant, "error"))["conflicts"] == []


async def test_same_collection_paid_again_with_another_amount_is_a_conflict(
    service: Service, twinfield: Sandbox
) -> None:
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    twinfield.seed_invoice("1001", "F2025-1500", 12100)
    first = paid("F2025-1500", 12100)
    await service.publish(first, tenant)
    await wait_bookings(service, tenant, "matched", 1)
    await service.publish(first.model_copy(update={"amount_cents": 12000, "twikey_id": "9999"}), tenant)

    (conflict,) = await _open_conflicts(service, tenant, 1)
    assert conflict["differences"] == ["payment", "amount"]
    reply = await service.api.post(
        f"/v1/bookings/conflicts/{conflict['id']}/book", json={}, headers=service.headers(tenant)
    )
    assert reply.status_code == 409 and reply.json()["code"] == "conflict_same_collection"


async def _has(service: Service, conflict_id: str, event_type: str) -> bool:
    return event_type in await outbox_types(service, conflict_id)
