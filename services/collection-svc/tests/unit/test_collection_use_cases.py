"""collection-svc's use cases driven through an in-memory repository (no PostgreSQL, no broker):
an invoice accepted and its collection decided, bad input refused, the due collection handed to
sync-svc, Twikey's answers (accepted, paid, failed) applied."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from collection_svc.domain.invoices import InvoiceInput
from collection_svc.domain.policy import CollectionPolicy, MandateView
from collection_svc.service_layer import invoices, transactions
from collection_svc.service_layer.engine import submit_due_in

from .fakes import TENANT, fake_uow

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MANDATE = "SBX1M0001"


def invoice(**values: object) -> InvoiceInput:
    fields: dict[str, object] = {
        "invoice_number": "INV-2026-001",
        "customer_number": "C-1",
        "customer_name": "An Peeters",
        "customer_email": "an@example.be",
        "amount_cents": 12_345,
        "currency": "EUR",
        "invoice_date": date(2026, 3, 1),
        "due_date": date(2026, 3, 15),
        "description": "March",
        "subscription_reference": None,
    }
    fields.update(values)
    return InvoiceInput(**fields)  # type: ignore[arg-type]


def with_mandate():
    uow, repo = fake_uow()
    repo.mandates[(TENANT, "C-1")] = MandateView(MANDATE, "active")
    return uow, repo


async def posted(uow, data: InvoiceInput | None = None, key: str | None = None):
    async with uow:  # the request's unit of work
        result = await invoices.post_invoice(uow, TENANT, data or invoice(), key, NOW)
        await uow.commit()
    return result


def staged(type_: str, **data: object) -> SimpleNamespace:
    """A Twikey message as the consumer stages it for the applier."""
    return SimpleNamespace(tenant_id=TENANT, event_id=uuid.uuid4(), event_type=type_, correlation_id=None, data=data)


async def applied(uow, *messages: SimpleNamespace, now: datetime = NOW) -> None:
    async with uow:
        await transactions.apply_messages(uow, list(messages), now)
        await uow.commit()


# --- accepted --------------------------------------------------------------------------------------


async def test_an_invoice_of_a_customer_with_an_active_mandate_is_accepted_and_scheduled() -> None:
    uow, repo = with_mandate()
    result = await posted(uow)
    assert result.created
    assert repo.invoices[result.invoice_id].invoice_number == "INV-2026-001"
    [rec] = repo.of_invoice(result.invoice_id)
    assert (rec.status, rec.mandate_number, rec.attempt, rec.amount_cents) == ("scheduled", MANDATE, 1, 12_345)
    assert rec.collect_on is not None and rec.collect_on >= NOW.date()
    assert uow.types() == ["collection.scheduled"]
    assert uow.events[0].data["invoice_number"] == "INV-2026-001"


async def test_an_invoice_without_a_usable_mandate_is_skipped_with_its_reason_and_a_pay_link_is_asked_for() -> None:
    uow, repo = fake_uow()
    result = await posted(uow)
    [rec] = repo.of_invoice(result.invoice_id)
    assert rec.status == "skipped" and rec.reason
    assert list(repo.pay_links) == [result.invoice_id]
    assert uow.types() == ["collection.skipped", "sync.paylink_requested"]


async def test_a_tenant_that_wants_no_pay_links_gets_none() -> None:
    uow, repo = fake_uow()
    repo.policies[TENANT] = CollectionPolicy(paylink_when_no_mandate=False)
    await posted(uow)
    assert repo.pay_links == {}
    assert uow.types() == ["collection.skipped"]


async def test_posting_the_same_invoice_again_answers_with_the_stored_one_and_publishes_nothing() -> None:
    uow, repo = with_mandate()
    first = await posted(uow, key="k-1")
    again = await posted(uow, key="k-1")
    by_number = await posted(uow)
    assert (again.invoice_id, again.created) == (first.invoice_id, False)
    assert (by_number.invoice_id, by_number.created) == (first.invoice_id, False)
    assert len(repo.invoices) == 1 and len(repo.collections) == 1
    assert uow.types() == ["collection.scheduled"]


# --- bad input refused -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"amount_cents": 0},
        {"amount_cents": -100},
        {"currency": "USD"},
        {"invoice_number": ""},
        {"due_date": date(2026, 2, 1), "invoice_date": date(2026, 3, 1)},
    ],
    ids=["zero", "negative", "currency", "no-number", "due-before-invoice"],
)
async def test_an_invalid_invoice_is_refused_and_changes_nothing(bad: dict[str, object]) -> None:
    uow, repo = with_mandate()
    with pytest.raises(Exception) as refused:
        await posted(uow, invoice(**bad))
    assert refused.value.code == "validation_error"  # type: ignore[attr-defined]
    assert repo.invoices == {} and repo.collections == {} and uow.events == []


async def test_an_unknown_subscription_is_refused() -> None:
    uow, repo = with_mandate()
    with pytest.raises(Exception) as refused:
        await posted(uow, invoice(subscription_reference="SUB-404"))
    assert refused.value.code == "validation_error"  # type: ignore[attr-defined]
    assert repo.invoices == {}


async def test_the_same_number_with_other_data_is_a_conflict_and_the_stored_invoice_stays() -> None:
    uow, repo = with_mandate()
    first = await posted(uow)
    with pytest.raises(Exception) as refused:
        await posted(uow, invoice(amount_cents=99))
    assert refused.value.code == "invoice_number_conflict"  # type: ignore[attr-defined]
    assert repo.invoices[first.invoice_id].amount_cents == 12_345


# --- collected -------------------------------------------------------------------------------------


async def test_a_due_collection_is_handed_to_sync_svc_in_one_command_and_not_before_its_day() -> None:
    uow, repo = with_mandate()
    result = await posted(uow)
    [rec] = repo.of_invoice(result.invoice_id)
    assert rec.collect_on is not None
    day_before = datetime.combine(rec.collect_on - timedelta(days=1), NOW.timetz())
    assert await submit_due_in(uow, day_before) == 0

    on_the_day = datetime.combine(rec.collect_on, NOW.timetz())
    assert await submit_due_in(uow, on_the_day) == 1
    [submitted] = repo.of_invoice(result.invoice_id)
    assert (submitted.status, submitted.submitted_at, submitted.version) == ("submitted", on_the_day, rec.version + 1)
    command = uow.events[-1]
    assert command.type == "sync.collect_requested"
    assert [(i["collection_id"], i["mandate_number"], i["amount_cents"]) for i in command.data["items"]] == [
        (str(rec.id), MANDATE, 12_345)
    ]
    assert await submit_due_in(uow, on_the_day) == 0  # handed over once


async def submitted():
    uow, repo = with_mandate()
    result = await posted(uow)
    [rec] = repo.of_invoice(result.invoice_id)
    assert rec.collect_on is not None
    await submit_due_in(uow, datetime.combine(rec.collect_on, NOW.timetz()))
    return uow, repo, rec


async def test_twikey_accepting_the_transaction_publishes_submitted_with_its_id() -> None:
    uow, repo, rec = await submitted()
    await applied(
        uow,
        staged(
            "twikey.transaction.created",
            collection_id=str(rec.id),
            transaction_id="TX-9",
            mandate_number=MANDATE,
            amount_cents=12_345,
        ),
    )
    stored = repo.collections[rec.id]
    assert (stored.status, stored.twikey_transaction_id, stored.reason_code) == ("submitted", "TX-9", "accepted")
    assert uow.types()[-1] == "collection.submitted"


# --- paid ------------------------------------------------------------------------------------------


def feed(seq: int, state: str, **more: object) -> SimpleNamespace:
    return staged(
        "twikey.transaction.changed",
        twikey_event_id=f"tx/{seq}",
        feed_seq=seq,
        transaction_id="TX-9",
        amount_cents=12_345,
        state=state,
        **more,
    )


async def test_a_paid_transaction_marks_the_collection_paid_once_even_when_the_feed_replays() -> None:
    uow, repo, rec = await submitted()
    await applied(uow, feed(1, "PAID", reference=str(rec.id)))
    paid = repo.collections[rec.id]
    assert (paid.status, paid.reason_code, paid.last_feed_seq) == ("paid", "paid", 1)
    assert paid.paid_at == NOW
    assert uow.types()[-1] == "collection.paid"
    published = len(uow.events)

    await applied(uow, feed(1, "PAID", reference=str(rec.id)))  # a feed reset replays it
    assert len(uow.events) == published
    assert repo.collections[rec.id] == paid


async def test_a_transaction_found_by_its_id_alone_is_matched_too() -> None:
    uow, repo, rec = await submitted()
    repo.collections[rec.id] = replace(repo.collections[rec.id], twikey_transaction_id="TX-9")
    await applied(uow, feed(1, "PAID"))
    assert repo.collections[rec.id].status == "paid"


async def test_a_failed_debit_with_a_retryable_code_schedules_the_next_attempt() -> None:
    uow, repo, rec = await submitted()
    await applied(uow, feed(1, "ERROR", reference=str(rec.id), bank_error="AM04", final=True))
    first, second = repo.of_invoice(rec.invoice_id)
    assert (first.status, first.r_code) == ("failed", "AM04")
    assert (second.status, second.attempt, second.reason_code) == ("scheduled", 2, "retry")
    assert second.collect_on == NOW.date() + timedelta(days=CollectionPolicy().retry_after_days)
    assert uow.types()[-2:] == ["collection.failed", "collection.scheduled"]


async def test_a_message_about_another_tenants_collection_changes_nothing() -> None:
    uow, repo, rec = await submitted()
    other = feed(1, "PAID", reference=str(rec.id))
    other.tenant_id = uuid.uuid4()
    before = dict(repo.collections)
    published = len(uow.events)
    await applied(uow, other)
    assert repo.collections == before and len(uow.events) == published


async def test_an_older_feed_entry_arriving_after_paid_is_ignored() -> None:
    uow, repo, rec = await submitted()
    await applied(uow, feed(2, "PAID", reference=str(rec.id)))
    paid = repo.collections[rec.id]
    published = len(uow.events)
    await applied(uow, feed(1, "ERROR", reference=str(rec.id), bank_error="AM04"))
    assert repo.collections[rec.id] == paid
    assert len(uow.events) == published
