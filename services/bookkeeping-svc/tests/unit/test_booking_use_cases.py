"""The booking steps' use cases driven through in-memory fakes (no PostgreSQL, no broker, no
Twinfield): a post recorded, Twinfield's answer, a timeout and its backoff, a MEMO found already
booked, a refusal onto the errors list, and the operator's retry — what each stores and publishes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from bookkeeping_svc.adapters.twinfield.documents import Message, Posted
from bookkeeping_svc.adapters.twinfield.errors import OutcomeUnknown, RateLimited
from bookkeeping_svc.domain.booking import Booking, Status
from bookkeeping_svc.domain.errors import HINTS
from bookkeeping_svc.service_layer import intake
from bookkeeping_svc.service_layer.booking import post
from bookkeeping_svc.service_layer.booking.work import failure, record

from .fakes import TENANT, booking_row, fake_uow, work_on

OFFICE, CUSTOMER, SALES = "NLA000001", "1001", ("VRK", "202500042", 1)


async def recorded(uow, row, outcome) -> None:  # one transition in its own transaction, as the steps do
    async with uow:
        await record(uow, row.id, outcome)
        await uow.commit()


async def posting():
    uow, repo = fake_uow()
    row = repo.add(booking_row())
    await recorded(uow, row, Booking.of(row).post(OFFICE, CUSTOMER, SALES))
    return uow, repo, row


def memo(line: int = 2) -> SimpleNamespace:
    return SimpleNamespace(customer_line_id=line)


# --- post ------------------------------------------------------------------------------------------


async def test_a_post_marks_the_booking_posting_with_office_customer_and_sales_line_and_publishes_nothing() -> None:
    uow, _repo, row = await posting()
    assert (row.status, row.office, row.customer_code) == ("posting", OFFICE, CUSTOMER)
    assert (row.sales_daybook, row.sales_number, row.sales_line) == SALES
    assert row.version == 2
    assert uow.events == [] and uow.commits == 1


async def test_a_booking_asked_to_be_reversed_before_its_post_is_closed_without_posting() -> None:
    uow, repo = fake_uow()
    row = repo.add(booking_row(reverse_requested=True, status="posting"))
    await recorded(uow, row, Booking.of(row).not_posted())
    assert row.status == "reversed"
    assert uow.types() == ["booking.reversed"]


# --- Twinfield's answer ----------------------------------------------------------------------------


async def test_an_accepted_memo_books_the_payment_with_its_number_and_line() -> None:
    uow, _repo, row = await posting()
    work = work_on(uow)
    await post._answered(work, [(row, Booking.of(row), memo(2))], [Posted(ok=True, number="202500101", messages=[])])
    assert (row.status, row.memo_number, row.memo_line) == ("booked", "202500101", 2)
    assert row.booked_at is not None and row.error_code is None
    assert uow.commits == 2


async def test_a_refused_memo_goes_on_the_errors_list_with_twinfields_words_and_publishes_failed() -> None:
    uow, _repo, row = await posting()
    refusal = [Message("header/period", "Boekingsperiode 2025/03 is gesloten.", "error")]
    await post._answered(
        work_on(uow), [(row, Booking.of(row), memo())], [Posted(ok=False, number=None, messages=refusal)]
    )
    assert row.status == "error"
    assert "Boekingsperiode 2025/03 is gesloten." in row.error_message
    assert row.memo_number is None
    assert uow.types() == ["booking.failed"]
    assert uow.events[0].data["status"] == "error" and uow.events[0].data["booking_id"] == str(row.id)


async def test_an_answer_that_does_not_match_what_was_sent_changes_nothing() -> None:
    uow, _repo, row = await posting()
    before = vars(row).copy()
    ok = Posted(ok=True, number="202500101", messages=[])
    await post._answered(work_on(uow), [(row, Booking.of(row), memo())], [ok, ok])
    assert vars(row) == before
    assert uow.events == [] and uow.commits == 1


# --- timeout -------------------------------------------------------------------------------------


async def test_a_timeout_backs_off_doubling_and_after_the_last_attempt_goes_on_the_errors_list() -> None:
    uow, _repo, row = await posting()
    work = work_on(uow, transient_attempts=3, transient_backoff_seconds=5.0)

    start = datetime.now(UTC)
    await work.timeout([row], OutcomeUnknown("no answer within 30 s"))
    assert (row.status, row.transient_failures) == ("posting", 1)
    assert row.next_attempt_at >= start + timedelta(seconds=10)  # 5 s doubled once
    first_wait = row.next_attempt_at - start
    await work.timeout([row], OutcomeUnknown("no answer within 30 s"))
    assert row.transient_failures == 2
    assert row.next_attempt_at - datetime.now(UTC) > first_wait  # the wait doubles
    assert uow.events == []

    await work.timeout([row], OutcomeUnknown("no answer within 30 s"))
    assert (row.status, row.error_code, row.hint) == ("error", "unavailable", HINTS["unavailable"].hint)
    assert uow.types() == ["booking.failed"]


async def test_a_rate_limit_is_recorded_as_such() -> None:
    uow, _repo, row = await posting()
    await work_on(uow, transient_attempts=1).timeout([row], RateLimited(30.0))
    assert (row.status, row.error_code) == ("error", "rate_limited")


# --- found already booked ----------------------------------------------------------------------------


async def test_a_memo_found_already_in_twinfield_books_the_payment_and_is_never_posted_again() -> None:
    uow, _repo, row = await posting()
    await recorded(uow, row, Booking.of(row).found_existing("202500101", 2, OFFICE, CUSTOMER, datetime.now(UTC)))
    assert (row.status, row.memo_number, row.memo_line) == ("booked", "202500101", 2)
    assert await work_on(uow).claimed(TENANT, [row]) == {"202500101"}  # no other booking may claim it
    with pytest.raises(Exception, match="post"):
        Booking.of(row).post(OFFICE, CUSTOMER, SALES)


# --- our own refusal (error) ---------------------------------------------------------------------------


async def test_a_booking_our_own_check_refuses_goes_on_the_errors_list_with_its_hint() -> None:
    uow, _repo, row = await posting()
    async with uow:
        await work_on(uow).refuse(uow, row, failure("not_configured", "no cross account for pay links"))
        await uow.commit()
    assert (row.status, row.error_code) == ("error", "not_configured")
    assert row.hint == HINTS["not_configured"].hint
    assert uow.types() == ["booking.failed"]


# --- the operator's retry ------------------------------------------------------------------------------


async def test_retrying_a_failed_booking_without_a_memo_looks_again_and_wakes_the_booker() -> None:
    uow, repo = fake_uow()
    row = repo.add(booking_row(status="error", error_code="unavailable", transient_failures=8))
    async with uow:
        await intake.retry(uow, TENANT, row.id)
        await uow.commit()
    assert row.status == Status.POSTING  # looked up before anything is posted again
    assert row.transient_failures == 0
    assert repo.wakes == 1


async def test_retrying_a_failed_booking_with_a_memo_does_not_post_it_again() -> None:
    uow, repo = fake_uow()
    row = repo.add(booking_row(status="error", memo_number="202500101", memo_line=2, error_code="validation"))
    async with uow:
        await intake.retry(uow, TENANT, row.id)
        await uow.commit()
    assert row.status == Status.BOOKED


async def test_a_matched_payment_cannot_be_retried_and_another_tenants_booking_is_not_found() -> None:
    uow, repo = fake_uow()
    booked = repo.add(booking_row(status="matched", memo_number="202500101", memo_line=2, matched_at=datetime.now(UTC)))
    with pytest.raises(Exception) as refused:
        await intake.retry(uow, TENANT, booked.id)
    assert refused.value.code == "booking_not_retryable"  # type: ignore[attr-defined]
    assert booked.status == "matched" and repo.wakes == 0
    with pytest.raises(Exception) as missing:
        await intake.retry(uow, uuid.uuid4(), booked.id)
    assert missing.value.code == "booking_not_found"  # type: ignore[attr-defined]
