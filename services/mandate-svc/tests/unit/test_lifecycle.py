"""The lifecycle rules: ERP commands, Twikey feed messages (in order, out of order, duplicated,
replayed), command failures, and which public event each change publishes."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from mandate_svc.domain.model import (
    FeedMessage,
    InvalidState,
    Mandate,
    Outcome,
    ReasonRequired,
    Status,
    apply_feed,
    command_failed,
    mark_prepared,
    new_from_feed,
    request_action,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
NUMBER = "SBX1M0001"


def requested(scheme: str = "CORE") -> Mandate:
    return Mandate(
        id="m-1",
        tenant_id="t-1",
        customer_number="C-1",
        scheme=scheme,
        base_status=Status.REQUESTED,
        created_at=T0,
        updated_at=T0,
        delivery="email",
        name="An Peeters",
        email="an@example.be",
    )


def prepared(scheme: str = "CORE") -> Mandate:
    out = mark_prepared(requested(scheme), NUMBER, "https://twikey.to/x", NOW)
    return out.mandate


def msg(seq: int, change: str = "signed", minutes: int | None = None, **kw: Any) -> FeedMessage:
    return FeedMessage(
        twikey_event_id=f"mandate/{seq}",
        feed_seq=seq,
        event_time=T0 + timedelta(minutes=seq if minutes is None else minutes),
        mandate_number=NUMBER,
        change=change,
        **kw,
    )


SIGNED = dict(
    iban="BE16645348971174",
    bic="GKCCBEBB",
    signature_date=date(2026, 1, 5),
    sign_method="itsme",
    sign_place="Gent",
    signer="An Peeters",
    max_amount_cents=50_000,
    scheme="CORE",
)


def active() -> Mandate:
    return apply_feed(prepared(), msg(1, **SIGNED), NOW).mandate


def run(m: Mandate, *messages: FeedMessage) -> tuple[Mandate, list[str | None]]:
    events = []
    for message in messages:
        out = apply_feed(m, message, NOW)
        events.append(out.event)
        m = out.mandate
    return m, events


# --- preparing ----------------------------------------------------------------------------------


def test_invite_accepted_makes_the_mandate_prepared_and_publishes_prepared() -> None:
    out = mark_prepared(requested(), NUMBER, "https://twikey.to/x", NOW)
    assert out.event == "prepared"
    assert out.mandate.status == Status.PREPARED
    assert out.mandate.mandate_number == NUMBER
    assert out.mandate.sign_url == "https://twikey.to/x"
    assert out.mandate.version == 1


def test_invite_answer_for_an_already_prepared_mandate_changes_nothing() -> None:
    m = prepared()
    assert mark_prepared(m, NUMBER, "https://twikey.to/x", NOW).event is None


def test_invite_answer_after_the_erp_deleted_the_mandate_cancels_it_at_twikey() -> None:
    m = request_action(requested(), "cancel", None, NOW).mandate
    assert m.status == Status.CANCELLED
    out = mark_prepared(m, NUMBER, "https://twikey.to/x", NOW)
    assert out.command == "cancel"
    assert out.mandate.status == Status.CANCELLED
    assert out.mandate.mandate_number == NUMBER


# --- signing ------------------------------------------------------------------------------------


def test_signing_activates_and_fills_bank_data_and_publishes_signed() -> None:
    out = apply_feed(prepared(), msg(1, **SIGNED), NOW)
    m = out.mandate
    assert out.event == "signed"
    assert m.status == Status.ACTIVE
    assert (m.iban, m.bic, m.signature_date) == ("BE16645348971174", "GKCCBEBB", date(2026, 1, 5))
    assert (m.sign_method, m.sign_place, m.signer, m.max_amount_cents) == ("itsme", "Gent", "An Peeters", 50_000)
    assert m.signed_at == NOW
    assert m.version == 2
    assert m.collectable


def test_max_amount_zero_means_no_limit() -> None:
    m = apply_feed(prepared(), msg(1, **{**SIGNED, "max_amount_cents": 0}), NOW).mandate
    assert m.max_amount_cents is None


def test_debtor_changing_the_max_amount_publishes_updated() -> None:
    out = apply_feed(active(), msg(2, "updated", max_amount_cents=20_000), NOW)
    assert out.event == "updated"
    assert out.mandate.max_amount_cents == 20_000
    assert out.mandate.status == Status.ACTIVE


def test_update_that_changes_nothing_publishes_nothing_and_keeps_the_version() -> None:
    m = active()
    out = apply_feed(m, msg(2, "updated", iban=m.iban), NOW)
    assert out.event is None
    assert out.mandate.version == m.version
    assert out.changed  # the feed position moved: saved, not published
    assert out.mandate.feed_seq == 2


def test_signed_message_for_an_unknown_mandate_creates_it_active() -> None:
    fresh = new_from_feed(msg(5, **SIGNED, customer_number="C-9"), "m-9", "t-1", NOW)
    out = apply_feed(fresh, msg(5, **SIGNED, customer_number="C-9"), NOW)
    assert out.event == "signed"
    assert out.mandate.status == Status.ACTIVE
    assert out.mandate.customer_number == "C-9"
    assert out.mandate.mandate_number == NUMBER
    assert out.mandate.version == 1


def test_update_for_an_unknown_suspended_mandate_creates_it_suspended_and_signed() -> None:
    fresh = new_from_feed(msg(5, "updated"), "m-9", "t-1", NOW)
    out = apply_feed(fresh, msg(5, "updated", suspended=True, **SIGNED), NOW)
    assert out.mandate.status == Status.SUSPENDED
    assert out.event == "signed"


def test_cancel_for_an_unknown_mandate_creates_it_cancelled() -> None:
    fresh = new_from_feed(msg(5, "cancelled", scheme="B2B"), "m-9", "t-1", NOW)
    out = apply_feed(fresh, msg(5, "cancelled", scheme="B2B", reason="MD01"), NOW)
    assert out.mandate.status == Status.CANCELLED
    assert out.event == "cancelled"
    assert out.mandate.reason == "MD01"


# --- B2B ----------------------------------------------------------------------------------------


def test_b2b_signature_waits_for_the_bank_then_the_bank_accepts() -> None:
    m = prepared("B2B")
    m, events = run(
        m,
        msg(1, state="SIGNED_PENDING_DEBTOR_BANK", scheme="B2B"),
        msg(2, "signed", state="SIGNED", scheme="B2B", **{k: v for k, v in SIGNED.items() if k != "scheme"}),
    )
    assert events == ["updated", "signed"]
    assert m.status == Status.ACTIVE
    assert m.iban == "BE16645348971174"


def test_b2b_pending_mandate_is_not_collectable() -> None:
    m = apply_feed(prepared("B2B"), msg(1, state="SIGNED_PENDING_DEBTOR_BANK"), NOW).mandate
    assert m.status == Status.PENDING_BANK
    assert not m.collectable


def test_b2b_pending_mandate_rejected_by_the_bank_becomes_rejected() -> None:
    m, events = run(
        prepared("B2B"),
        msg(1, state="SIGNED_PENDING_DEBTOR_BANK"),
        msg(2, "cancelled", reason="Rejected by debtor bank"),
    )
    assert events == ["updated", "rejected"]
    assert m.status == Status.REJECTED
    assert m.reason == "Rejected by debtor bank"


def test_b2b_prepared_mandate_cancelled_in_the_feed_was_rejected_by_the_bank() -> None:
    # Twikey puts a B2B mandate in the feed only once the bank accepted; a rejection is a cancel.
    m, events = run(prepared("B2B"), msg(1, "cancelled", reason="Rejected by debtor bank"))
    assert (m.status, events) == (Status.REJECTED, ["rejected"])


def test_core_prepared_mandate_cancelled_in_the_feed_is_cancelled() -> None:
    m, events = run(prepared("CORE"), msg(1, "cancelled", reason="refused"))
    assert (m.status, events) == (Status.CANCELLED, ["cancelled"])


# --- suspend / resume / cancel from the feed -----------------------------------------------------


def test_feed_suspension_and_resumption() -> None:
    m, events = run(active(), msg(2, "updated", suspended=True), msg(3, "updated", suspended=False))
    assert events == ["suspended", "resumed"]
    assert m.status == Status.ACTIVE


def test_suspended_state_string_suspends() -> None:
    m, events = run(active(), msg(2, "updated", state="SUSPENDED"))
    assert (m.status, events) == (Status.SUSPENDED, ["suspended"])


def test_cancel_in_the_feed_cancels_with_reason() -> None:
    m, events = run(active(), msg(2, "cancelled", reason="MD01"))
    assert (m.status, m.reason, events) == (Status.CANCELLED, "MD01", ["cancelled"])
    assert not m.collectable


def test_cancelled_is_final_even_for_a_newer_update() -> None:
    m, events = run(active(), msg(2, "cancelled"), msg(3, "updated", suspended=False, iban="BE49473211985171"))
    assert m.status == Status.CANCELLED
    assert m.iban == "BE49473211985171"  # data still follows Twikey
    assert events == ["cancelled", "updated"]


# --- ordering, duplicates, replays --------------------------------------------------------------


def test_duplicate_message_is_a_no_op() -> None:
    m = active()
    out = apply_feed(m, msg(1, **SIGNED), NOW)
    assert out.event is None
    assert out.mandate == m


def test_older_message_never_overwrites_a_newer_state() -> None:
    m, _ = run(active(), msg(3, "updated", suspended=True))
    out = apply_feed(m, msg(2, "updated", suspended=False), NOW)
    assert out.mandate.status == Status.SUSPENDED
    assert out.event is None


def test_older_message_does_not_overwrite_newer_data_but_fills_gaps() -> None:
    m, _ = run(prepared(), msg(5, "cancelled", reason="MD01"))
    out = apply_feed(m, msg(1, **SIGNED), NOW)
    assert out.mandate.status == Status.CANCELLED
    assert out.mandate.iban == "BE16645348971174"
    assert out.event == "updated"
    m2, _ = run(active(), msg(4, "updated", iban="BE49473211985171"))
    assert apply_feed(m2, msg(3, "updated", iban="BE68539007547034"), NOW).mandate.iban == "BE49473211985171"


def test_order_is_event_time_first_then_feed_sequence() -> None:
    m, _ = run(active(), msg(7, "updated", minutes=30, suspended=True))
    # a higher seq but an earlier event time is older
    assert apply_feed(m, msg(8, "updated", minutes=20, suspended=False), NOW).mandate.status == Status.SUSPENDED
    # same time, higher seq is newer
    assert apply_feed(m, msg(8, "updated", minutes=30, suspended=False), NOW).mandate.status == Status.ACTIVE


HISTORY = [
    msg(1, **SIGNED),
    msg(2, "updated", max_amount_cents=20_000),
    msg(3, "updated", suspended=True),
    msg(4, "updated", suspended=False, iban="BE49473211985171"),
    msg(5, "cancelled", reason="MD01"),
]
_STATE = ("status", "base_status", "iban", "bic", "max_amount_cents", "signature_date", "sign_method", "reason")


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(HISTORY)))))
def test_any_delivery_order_ends_in_the_same_state(order: tuple[int, ...]) -> None:
    in_order, _ = run(prepared(), *HISTORY)
    shuffled, _ = run(prepared(), *(HISTORY[i] for i in order))
    assert {k: getattr(shuffled, k) for k in _STATE} == {k: getattr(in_order, k) for k in _STATE}


def test_replaying_the_whole_feed_leaves_the_mandate_exactly_as_it_was() -> None:
    m, _ = run(prepared(), *HISTORY)
    again, events = run(m, *HISTORY)
    assert again == m
    assert events == [None] * len(HISTORY)


# --- ERP commands -------------------------------------------------------------------------------


def test_suspend_an_active_mandate_takes_effect_at_once_and_asks_twikey() -> None:
    out = request_action(active(), "suspend", "holiday", NOW)
    assert (out.event, out.command, out.command_reason) == ("suspended", "suspend", "holiday")
    assert out.mandate.status == Status.SUSPENDED
    assert out.mandate.pending_action == "suspend"
    assert not out.mandate.collectable


@pytest.mark.parametrize("status", ["prepared", "suspended", "cancelled"])
def test_suspend_needs_an_active_mandate(status: str) -> None:
    m = {
        "prepared": prepared(),
        "suspended": run(active(), msg(2, "updated", suspended=True))[0],
        "cancelled": run(active(), msg(2, "cancelled"))[0],
    }[status]
    with pytest.raises(InvalidState):
        request_action(m, "suspend", None, NOW)


def test_resume_a_suspended_mandate() -> None:
    m, _ = run(active(), msg(2, "updated", suspended=True))
    out = request_action(m, "resume", None, NOW)
    assert (out.event, out.command, out.mandate.status) == ("resumed", "resume", Status.ACTIVE)


def test_resume_needs_a_suspended_mandate() -> None:
    with pytest.raises(InvalidState):
        request_action(active(), "resume", None, NOW)


def test_remind_a_prepared_mandate_sends_the_invite_again_without_a_state_change() -> None:
    m = prepared()
    out = request_action(m, "remind", None, NOW)
    assert (out.event, out.command, out.mandate) == (None, "remind", m)


def test_remind_needs_a_prepared_mandate() -> None:
    with pytest.raises(InvalidState):
        request_action(active(), "remind", None, NOW)


def test_cancel_a_signed_mandate_needs_a_reason() -> None:
    with pytest.raises(ReasonRequired):
        request_action(active(), "cancel", "  ", NOW)


def test_cancel_a_signed_mandate_with_a_reason() -> None:
    out = request_action(active(), "cancel", "contract ended", NOW)
    assert (out.event, out.command, out.command_reason) == ("cancelled", "cancel", "contract ended")
    assert out.mandate.status == Status.CANCELLED


def test_delete_a_prepared_mandate_needs_no_reason() -> None:
    out = request_action(prepared(), "cancel", None, NOW)
    assert (out.event, out.command) == ("cancelled", "cancel")
    assert out.mandate.reason == "deleted by the creditor"


def test_delete_a_requested_mandate_sends_nothing_to_twikey() -> None:
    out = request_action(requested(), "cancel", None, NOW)
    assert (out.mandate.status, out.command) == (Status.CANCELLED, None)


def test_deleting_twice_is_a_no_op() -> None:
    m = request_action(prepared(), "cancel", None, NOW).mandate
    out = request_action(m, "cancel", None, NOW)
    assert (out.event, out.command, out.mandate) == (None, None, m)


def test_a_rejected_mandate_cannot_be_cancelled() -> None:
    m, _ = run(prepared("B2B"), msg(1, "cancelled"))
    with pytest.raises(InvalidState):
        request_action(m, "cancel", "x", NOW)


def test_unknown_action_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        request_action(active(), "explode", None, NOW)


# --- ERP commands meeting the feed --------------------------------------------------------------


def test_a_feed_message_from_before_the_suspension_does_not_undo_it() -> None:
    m = request_action(active(), "suspend", None, NOW).mandate
    out = apply_feed(m, msg(2, "updated", suspended=False, max_amount_cents=1_000), NOW)
    assert out.mandate.status == Status.SUSPENDED
    assert out.mandate.pending_action == "suspend"
    assert out.mandate.max_amount_cents == 1_000


def test_twikey_confirming_the_suspension_clears_the_pending_action() -> None:
    m = request_action(active(), "suspend", None, NOW).mandate
    out = apply_feed(m, msg(2, "updated", suspended=True), NOW)
    assert out.mandate.pending_action is None
    assert out.mandate.status == Status.SUSPENDED


def test_twikey_cancel_overtakes_a_pending_suspension() -> None:
    m = request_action(active(), "suspend", None, NOW).mandate
    out = apply_feed(m, msg(2, "cancelled", reason="MD01"), NOW)
    assert (out.mandate.status, out.mandate.pending_action, out.event) == (Status.CANCELLED, None, "cancelled")


def test_signing_racing_a_delete_keeps_the_mandate_cancelled_until_twikey_confirms() -> None:
    m = request_action(prepared(), "cancel", None, NOW).mandate
    m, _ = run(m, msg(1, **SIGNED))
    assert m.status == Status.CANCELLED
    assert m.iban == "BE16645348971174"
    m, _ = run(m, msg(2, "cancelled", reason="deleted by the creditor"))
    assert (m.status, m.pending_action) == (Status.CANCELLED, None)


def test_failed_suspension_reverts_to_what_twikey_says_and_records_why() -> None:
    m = request_action(active(), "suspend", None, NOW).mandate
    out = command_failed(m, "suspend", "err_no_contract", "No mandate", NOW)
    assert out.mandate.status == Status.ACTIVE
    assert out.event == "updated"
    assert out.mandate.last_error is not None and out.mandate.last_error["code"] == "err_no_contract"
    assert out.mandate.reason == "suspend failed at Twikey: err_no_contract: No mandate"


def test_failed_cancel_of_an_already_cancelled_mandate_keeps_it_cancelled() -> None:
    m = request_action(active(), "cancel", "end", NOW).mandate
    out = command_failed(m, "cancel", "err_mandate_invalid_state", "invalid state", NOW)
    assert out.mandate.status == Status.CANCELLED


def test_failed_cancel_reverts_to_active() -> None:
    m = request_action(active(), "cancel", "end", NOW).mandate
    assert command_failed(m, "cancel", "unavailable", "Twikey down", NOW).mandate.status == Status.ACTIVE


def test_failed_remind_is_recorded_without_a_state_change() -> None:
    out = command_failed(prepared(), "remind", "err_no_contract", "gone", NOW)
    assert out.mandate.status == Status.PREPARED
    assert out.event == "updated"


def test_a_new_command_clears_the_last_command_error() -> None:
    m = command_failed(request_action(active(), "suspend", None, NOW).mandate, "suspend", "x", "y", NOW).mandate
    assert request_action(m, "suspend", None, NOW).mandate.last_error is None


def test_every_change_increments_the_version_by_one() -> None:
    m = prepared()
    versions = [m.version]
    for step in (
        lambda x: apply_feed(x, msg(1, **SIGNED), NOW),
        lambda x: request_action(x, "suspend", None, NOW),
        lambda x: apply_feed(x, msg(2, "updated", suspended=True), NOW),
        lambda x: request_action(x, "resume", None, NOW),
        lambda x: request_action(x, "cancel", "end", NOW),
    ):
        out: Outcome = step(m)
        m = out.mandate
        versions.append(m.version)
    assert versions == [1, 2, 3, 4, 5, 6]


def test_copy_is_independent() -> None:
    m = replace(active(), last_error={"command": "x", "code": "c", "message": "m", "at": "t"})
    c = m.copy()
    assert c.last_error is not None
    c.last_error["code"] = "changed"
    assert m.last_error is not None and m.last_error["code"] == "c"


def test_prepared_invite_expires_after_the_period_and_is_withdrawn_at_twikey() -> None:
    from mandate_svc.domain.model import expire_if_unsigned

    prepared = mark_prepared(requested(), NUMBER, "https://sign", T0).mandate
    early = expire_if_unsigned(prepared, T0 + timedelta(days=29), timedelta(days=30))
    assert early.event is None and early.mandate.status == Status.PREPARED
    late = expire_if_unsigned(prepared, T0 + timedelta(days=31), timedelta(days=30))
    assert late.event == "expired" and late.mandate.status == Status.EXPIRED
    assert late.command == "cancel" and late.mandate.version == prepared.version + 1


def test_only_prepared_mandates_expire() -> None:
    from mandate_svc.domain.model import expire_if_unsigned

    active = replace(requested(), base_status=Status.ACTIVE, mandate_number=NUMBER)
    assert expire_if_unsigned(active, T0 + timedelta(days=400), timedelta(days=30)).event is None
