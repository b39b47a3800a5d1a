"""The use cases of mandate-svc driven through in-memory fakes (no PostgreSQL, no broker, no
sync-svc): inviting a mandate, signing it through the feed, cancelling it, and what each stores
and publishes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from koppel_shared.events import new_event
from koppel_shared.events.twikey import TwikeyMandateChanged
from mandate_svc.adapters.sync_client import InviteRefused, SyncUnavailable
from mandate_svc.domain.model import FeedMessage, InvalidState, ReasonRequired, Status
from mandate_svc.domain.numbers import twikey_number
from mandate_svc.domain.preconditions import Customer, MandateRequest, PreconditionFailed
from mandate_svc.service_layer import mandates as uc

from .fakes import FakeSync, fake_uow

TENANT = str(uuid.UUID("11111111-1111-4111-8111-111111111111"))
OTHER_TENANT = str(uuid.UUID("22222222-2222-4222-8222-222222222222"))


def request(**customer: str | None) -> MandateRequest:
    fields: dict[str, str | None] = {"number": "C-1", "name": "An Peeters", "email": "an@example.be"}
    fields.update(customer)
    return MandateRequest(customer=Customer(**fields), scheme="CORE", delivery="email")  # type: ignore[arg-type]


def feed(number: str, seq: int, change: str = "signed") -> FeedMessage:
    return FeedMessage(
        twikey_event_id=f"mandate/{seq}",
        feed_seq=seq,
        event_time=datetime(2026, 1, 5, 9, seq, tzinfo=UTC),
        mandate_number=number,
        change=change,
        scheme="CORE",
        iban="BE16645348971174",
        bic="GKCCBEBB",
        signature_date=date(2026, 1, 5),
        sign_method="itsme",
        signer="An Peeters",
    )


def envelope(tenant: str = TENANT):  # the sync-svc message the consumer is handed
    data = TwikeyMandateChanged(
        twikey_event_id="x", feed_seq=1, event_time=datetime.now(UTC), mandate_number="x", change="signed"
    )
    return new_event(data, tenant_id=tenant)


async def invited():
    uow, mandates, unclaimed = fake_uow()
    sync = FakeSync()
    mandate, _replayed = await uc.prepare_mandate(uow, sync, TENANT, request(), "hash")
    return uow, mandates, unclaimed, sync, mandate


async def signed():
    uow, mandates, _unclaimed, _sync, mandate = await invited()
    assert mandate.mandate_number is not None
    async with uow:  # the inbox runner's transaction
        await uc.apply_feed_message(uow, envelope(), feed(mandate.mandate_number, 1))
        await uow.commit()
    return uow, mandates, await mandates.get(TENANT, mandate.id)


# --- invite ----------------------------------------------------------------------------------------


async def test_an_invited_mandate_is_prepared_with_its_number_and_sign_url_and_publishes_prepared_once() -> None:
    uow, mandates, _, sync, mandate = await invited()

    assert mandate.status == Status.PREPARED
    assert mandate.mandate_number == twikey_number(mandate.id)
    assert mandate.sign_url == f"https://twikey.example/sign/{mandate.mandate_number}"
    assert [i.reference for i in sync.invites] == [mandate.id]
    assert await mandates.get(TENANT, mandate.id) == mandate
    assert uow.types() == ["mandate.prepared"]
    assert uow.events[0].tenant_id == uuid.UUID(TENANT)
    assert uow.events[0].data["mandate_number"] == mandate.mandate_number
    assert mandates.history == [(TENANT, mandate.id, "mandate.prepared")]


async def test_a_mandate_failing_its_preconditions_is_neither_stored_nor_sent() -> None:
    uow, mandates, _ = fake_uow()
    sync = FakeSync()
    with pytest.raises(PreconditionFailed):
        await uc.prepare_mandate(uow, sync, TENANT, request(email=None), "hash")  # delivery by e-mail
    assert mandates.by_id == {} and sync.invites == [] and uow.events == []


async def test_an_invite_twikey_refuses_leaves_nothing_behind() -> None:
    uow, mandates, _ = fake_uow()
    sync = FakeSync(raises=InviteRefused("twikey_err_invalid_iban", "IBAN refused", "iban"))
    with pytest.raises(uc.InviteRefusedByTwikey):
        await uc.prepare_mandate(uow, sync, TENANT, request(), "hash")
    assert mandates.by_id == {}
    assert uow.events == []


async def test_sync_unavailable_with_a_key_keeps_the_requested_mandate_and_the_next_try_prepares_it() -> None:
    uow, mandates, _ = fake_uow()
    down = FakeSync(raises=SyncUnavailable("sync-svc timed out"))
    with pytest.raises(uc.InviteUnavailable) as raised:
        await uc.prepare_mandate(uow, down, TENANT, request(), "hash", idempotency_key="k-1")
    kept = await mandates.get(TENANT, raised.value.mandate_id or "")
    assert kept is not None and kept.status == Status.REQUESTED
    assert mandates.keys[(TENANT, "k-1")].lease_until is None  # released: the retry need not wait
    assert uow.events == []

    mandate, replayed = await uc.prepare_mandate(uow, FakeSync(), TENANT, request(), "hash", idempotency_key="k-1")
    assert (mandate.id, mandate.status, replayed) == (kept.id, Status.PREPARED, False)
    assert uow.types() == ["mandate.prepared"]


async def test_the_same_key_replays_the_mandate_and_another_body_with_it_is_a_conflict() -> None:
    uow, mandates, _ = fake_uow()
    sync = FakeSync()
    first, _ = await uc.prepare_mandate(uow, sync, TENANT, request(), "hash", idempotency_key="k-1")
    again, replayed = await uc.prepare_mandate(uow, sync, TENANT, request(), "hash", idempotency_key="k-1")
    assert (again.id, replayed) == (first.id, True)
    assert len(sync.invites) == 1 and uow.types() == ["mandate.prepared"]
    with pytest.raises(uc.IdempotencyConflict):
        await uc.prepare_mandate(uow, sync, TENANT, request(name="Other"), "other-hash", idempotency_key="k-1")
    assert len(mandates.by_id) == 1


# --- signed through the feed -----------------------------------------------------------------------


async def test_a_signed_feed_message_activates_the_mandate_and_publishes_signed() -> None:
    uow, _mandates, mandate = await signed()
    assert mandate is not None
    assert mandate.status == Status.ACTIVE
    assert mandate.iban == "BE16645348971174"
    assert uow.types() == ["mandate.prepared", "mandate.signed"]
    assert uow.events[-1].data["status"] == "active"


async def test_a_replayed_feed_message_changes_nothing_and_publishes_nothing() -> None:
    uow, mandates, mandate = await signed()
    assert mandate is not None and mandate.mandate_number is not None
    async with uow:
        await uc.apply_feed_message(uow, envelope(), feed(mandate.mandate_number, 1))
        await uow.commit()
    assert await mandates.get(TENANT, mandate.id) == mandate
    assert uow.types() == ["mandate.prepared", "mandate.signed"]


async def test_a_mandate_number_koppel_did_not_hand_out_waits_on_the_unclaimed_list() -> None:
    uow, mandates, unclaimed = fake_uow()
    async with uow:
        assert await uc.apply_feed_message(uow, envelope(), feed("ELSEWHERE-1", 1)) is None
        await uow.commit()
    entry = await unclaimed.get(TENANT, "ELSEWHERE-1")
    assert entry is not None and entry.status == "open" and len(entry.messages) == 1
    assert mandates.by_id == {} and uow.events == []


async def test_a_feed_message_for_another_tenants_number_does_not_touch_the_mandate() -> None:
    uow, mandates, mandate = await signed()
    assert mandate is not None and mandate.mandate_number is not None
    async with uow:
        await uc.apply_feed_message(uow, envelope(OTHER_TENANT), feed(mandate.mandate_number, 2, "cancelled"))
        await uow.commit()
    assert (await mandates.get(TENANT, mandate.id)) == mandate


# --- cancel ----------------------------------------------------------------------------------------


async def test_cancelling_a_signed_mandate_needs_a_reason() -> None:
    uow, mandates, mandate = await signed()
    assert mandate is not None
    with pytest.raises(ReasonRequired):
        await uc.act_on_mandate(uow, TENANT, mandate.id, "cancel")
    assert (await mandates.get(TENANT, mandate.id)) == mandate
    assert uow.types() == ["mandate.prepared", "mandate.signed"]


async def test_cancelling_a_signed_mandate_publishes_cancelled_with_the_command_to_twikey_in_one_commit() -> None:
    uow, mandates, mandate = await signed()
    assert mandate is not None
    commits = uow.commits
    after = await uc.act_on_mandate(uow, TENANT, mandate.id, "cancel", reason="customer left")
    assert (after.status, after.pending_action, after.reason) == (Status.CANCELLED, "cancel", "customer left")
    assert (await mandates.get(TENANT, mandate.id)) == after
    assert uow.commits == commits + 1
    assert uow.types()[-2:] == ["mandate.cancelled", "sync.mandate_action_requested"]
    command = uow.events[-1]
    assert command.data == {"mandate_number": mandate.mandate_number, "action": "cancel", "reason": "customer left"}


async def test_twikey_confirming_the_cancel_clears_it_and_a_second_cancel_changes_nothing() -> None:
    uow, mandates, mandate = await signed()
    assert mandate is not None and mandate.mandate_number is not None
    await uc.act_on_mandate(uow, TENANT, mandate.id, "cancel", reason="customer left")
    async with uow:
        await uc.apply_feed_message(uow, envelope(), feed(mandate.mandate_number, 2, "cancelled"))
        await uow.commit()
    cancelled = await mandates.get(TENANT, mandate.id)
    assert cancelled is not None
    assert (cancelled.status, cancelled.pending_action) == (Status.CANCELLED, None)
    assert uow.types().count("mandate.cancelled") == 1
    published = len(uow.events)

    again = await uc.act_on_mandate(uow, TENANT, mandate.id, "cancel", reason="again")
    assert again == cancelled and len(uow.events) == published


async def test_cancelling_an_invite_never_answered_cancels_at_once_without_a_command() -> None:
    uow, _mandates, _ = fake_uow()
    with pytest.raises(uc.InviteUnavailable) as raised:
        await uc.prepare_mandate(
            uow, FakeSync(raises=SyncUnavailable("down")), TENANT, request(), "hash", idempotency_key="k-1"
        )
    mandate_id = raised.value.mandate_id or ""
    after = await uc.act_on_mandate(uow, TENANT, mandate_id, "cancel")
    assert after.status == Status.CANCELLED
    assert "sync.mandate_action_requested" not in uow.types()


async def test_suspending_a_mandate_not_yet_signed_is_refused_and_changes_nothing() -> None:
    uow, mandates, _, _, mandate = await invited()
    with pytest.raises(InvalidState):
        await uc.act_on_mandate(uow, TENANT, mandate.id, "suspend")
    assert (await mandates.get(TENANT, mandate.id)) == mandate
    assert uow.types() == ["mandate.prepared"]


async def test_another_tenants_mandate_is_not_found() -> None:
    uow, _, mandate = await signed()
    assert mandate is not None
    with pytest.raises(uc.NotFound):
        await uc.act_on_mandate(uow, OTHER_TENANT, mandate.id, "cancel", reason="x")
    with pytest.raises(uc.NotFound):
        await uc.get_mandate(uow, OTHER_TENANT, mandate.id)


async def test_invites_nobody_signed_expire_publish_expired_and_are_withdrawn_at_twikey() -> None:
    uow, mandates, _, _, mandate = await invited()
    async with uow:
        assert await uc.expire_unsigned(uow, mandate.created_at + timedelta(days=31), timedelta(days=30)) == 1
        await uow.commit()
    expired = await mandates.get(TENANT, mandate.id)
    assert expired is not None and expired.status == Status.EXPIRED
    assert uow.types() == ["mandate.prepared", "mandate.expired", "sync.mandate_action_requested"]
    assert uow.events[-1].data["action"] == "cancel"


async def test_an_invite_younger_than_the_expiry_stays_prepared() -> None:
    uow, mandates, _, _, mandate = await invited()
    async with uow:
        assert await uc.expire_unsigned(uow, mandate.created_at + timedelta(days=29), timedelta(days=30)) == 0
        await uow.commit()
    assert (await mandates.get(TENANT, mandate.id)) == mandate
