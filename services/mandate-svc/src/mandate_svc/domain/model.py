"""The mandate and its lifecycle, as pure rules.

Two sources move a mandate:

- **Twikey's mandate feed** (through sync-svc's ``twikey.mandate.changed``): the truth about what
  Twikey has. Feed messages are ordered by (event time, feed sequence). A message that is not
  newer than the last one applied never changes the status (out-of-order delivery, duplicates and
  feed-reset replays are harmless). Each data field remembers the position of the message that
  last set it and takes a value only from a newer one (a last-writer-wins register per field), so
  a late, older message still fills what nobody newer said, and the end state does not depend on
  the order the messages came in.
- **The ERP's commands** (cancel, suspend, resume): the ERP's intent takes effect at once
  (``pending_action``) so nothing is collected on a mandate the ERP just suspended, and stays in
  force until the feed confirms it, or sync-svc reports that Twikey refused it, which reverts to
  what the feed last said.

``status`` is therefore derived: the pending action's target while one is pending, else
``base_status`` (what Twikey last told us, or what our invite did). Every effective change gives
an ``Outcome`` naming the public event to publish; the version grows by one with each of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Literal

from koppel_shared.debtor import DEBTOR_FIELDS

Action = Literal["cancel", "suspend", "resume", "remind"]


class Status(StrEnum):
    REQUESTED = "requested"
    PREPARED = "prepared"
    PENDING_BANK = "pending_bank"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


TERMINAL = frozenset({Status.CANCELLED, Status.REJECTED, Status.EXPIRED})
SIGNED = frozenset({Status.ACTIVE, Status.SUSPENDED})
ACTION_TARGET = {"cancel": Status.CANCELLED, "suspend": Status.SUSPENDED, "resume": Status.ACTIVE}

# Twikey state strings (X-STATE, webhook ``state``); the suspended name is the sandbox's choice.
_TWIKEY_STATES = {
    "PREPARED": None,
    "PRINT": None,
    "PRINTED": None,
    "SIGNED": Status.ACTIVE,
    "ACTIVE": Status.ACTIVE,
    "SIGNED_PENDING_DEBTOR_BANK": Status.PENDING_BANK,
    "PENDING_BANK": Status.PENDING_BANK,
    "SUSPENDED": Status.SUSPENDED,
    "PASSIVE": Status.SUSPENDED,
    "CANCELLED": Status.CANCELLED,
}


class InvalidState(Exception):
    """The command does not fit the mandate's status (a 409 for the ERP)."""

    def __init__(self, action: str, status: Status) -> None:
        super().__init__(f"cannot {action} a mandate that is {status.value}")
        self.action = action
        self.status = status


class ReasonRequired(Exception):
    """Cancelling a signed mandate needs a reason (Twikey's ``rsn``)."""


@dataclass(frozen=True)
class FeedMessage:
    """One message of Twikey's mandate feed, as sync-svc relays it."""

    twikey_event_id: str
    feed_seq: int
    event_time: datetime
    mandate_number: str
    change: str  # signed | updated | cancelled
    scheme: str | None = None
    state: str | None = None
    suspended: bool | None = None
    iban: str | None = None
    bic: str | None = None
    max_amount_cents: int | None = None
    signature_date: date | None = None
    sign_method: str | None = None
    sign_place: str | None = None
    signer: str | None = None
    reason: str | None = None
    contract_number: str | None = None
    customer_number: str | None = None
    name: str | None = None
    company_name: str | None = None
    email: str | None = None
    mobile: str | None = None
    language: str | None = None
    address: str | None = None
    zip: str | None = None
    city: str | None = None
    country: str | None = None

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.event_time, self.feed_seq)


@dataclass
class Mandate:
    id: str
    tenant_id: str
    customer_number: str
    scheme: str
    base_status: Status
    created_at: datetime
    updated_at: datetime
    version: int = 0
    pending_action: str | None = None
    delivery: str | None = None
    mandate_number: str | None = None
    sign_url: str | None = None
    name: str | None = None
    company_name: str | None = None
    email: str | None = None
    mobile: str | None = None
    language: str | None = None
    address: str | None = None
    zip: str | None = None
    city: str | None = None
    country: str | None = None
    iban: str | None = None
    bic: str | None = None
    max_amount_cents: int | None = None  # the debtor's own limit per collection; None = no limit
    signature_date: date | None = None
    sign_method: str | None = None
    sign_place: str | None = None
    signer: str | None = None
    contract_number: str | None = None
    reason: str | None = None
    last_error: dict[str, str] | None = None
    signed_at: datetime | None = None
    feed_event_time: datetime | None = None
    feed_seq: int | None = None
    # field name → feed position (see _stamp) of the message that last set it
    field_stamps: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        if self.pending_action in ACTION_TARGET:
            return ACTION_TARGET[self.pending_action]
        return self.base_status

    @property
    def collectable(self) -> bool:
        return self.status == Status.ACTIVE and self.mandate_number is not None

    def copy(self) -> Mandate:
        return replace(
            self,
            last_error=dict(self.last_error) if self.last_error else None,
            field_stamps=dict(self.field_stamps),
        )


# Fields a feed message fills on the mandate (message field → mandate field): the signature's, and
# the debtor's as ``koppel_shared.debtor.Debtor`` has them (the customer number is handled apart:
# it says whose mandate this is).
_DATA_FIELDS = (
    "iban",
    "bic",
    "signature_date",
    "sign_method",
    "sign_place",
    "signer",
    "contract_number",
    *(name for name in DEBTOR_FIELDS if name != "customer_number"),
)
_INTERNAL = frozenset({"version", "updated_at", "feed_event_time", "feed_seq", "field_stamps"})
_COMPARED = tuple(f.name for f in fields(Mandate) if f.name not in _INTERNAL)


@dataclass(frozen=True)
class Outcome:
    """What a rule did: the mandate after it, and the public event to publish (None = nothing
    changed, nothing to publish). ``command`` is a Twikey action to send to sync-svc."""

    mandate: Mandate
    event: str | None = None
    command: Action | None = None
    command_reason: str | None = None
    dirty: bool = False  # to be saved (an event, or only our bookkeeping such as the feed position)

    @property
    def changed(self) -> bool:
        return self.dirty or self.event is not None


def _event_for(before: Mandate, after: Mandate) -> str | None:
    old, new = before.status, after.status
    if old == new:
        same = all(getattr(before, name) == getattr(after, name) for name in _COMPARED)
        return None if same else "updated"
    if new == Status.PREPARED:
        return "prepared"
    if new in SIGNED and before.signed_at is None:
        return "signed"
    return {
        Status.SUSPENDED: "suspended",
        Status.ACTIVE: "resumed" if old == Status.SUSPENDED else "updated",
        Status.CANCELLED: "cancelled",
        Status.REJECTED: "rejected",
        Status.EXPIRED: "expired",
    }.get(new, "updated")


def _finish(
    before: Mandate,
    after: Mandate,
    now: datetime,
    force: str | None = None,
    command: Action | None = None,
    command_reason: str | None = None,
) -> Outcome:
    if after.status in SIGNED and after.signed_at is None:
        after.signed_at = now
    event = _event_for(before, after)
    if event is not None and force is not None:
        event = force
    if event is None:
        if after != before:  # only internal bookkeeping moved: save it, publish nothing
            after.updated_at = before.updated_at
            return Outcome(after, None, command, command_reason, dirty=True)
        return Outcome(before, None, command, command_reason)
    after.version = before.version + 1
    after.updated_at = now
    return Outcome(after, event, command, command_reason)


# --- created by the ERP -------------------------------------------------------------------------


def mark_prepared(mandate: Mandate, mandate_number: str, sign_url: str | None, now: datetime) -> Outcome:
    """Twikey accepted the invite. If the ERP cancelled the mandate while the invite was under
    way, the new Twikey mandate is cancelled right away instead."""
    after = mandate.copy()
    after.mandate_number = mandate_number
    after.sign_url = sign_url
    if mandate.status == Status.REQUESTED:
        after.base_status = Status.PREPARED
        return _finish(mandate, after, now)
    if mandate.status == Status.CANCELLED and mandate.mandate_number is None:
        after.pending_action = "cancel"
        return _finish(mandate, after, now, force="updated", command="cancel", command_reason=mandate.reason)
    return Outcome(mandate)


# --- the ERP's commands -------------------------------------------------------------------------


def request_action(mandate: Mandate, action: str, reason: str | None, now: datetime) -> Outcome:
    """Apply an ERP command: ``cancel`` (delete when not signed), ``suspend``, ``resume``, ``remind``."""
    status = mandate.status
    after = mandate.copy()
    after.last_error = None
    if action == "remind":
        if status != Status.PREPARED:
            raise InvalidState(action, status)
        return Outcome(mandate, None, command="remind")
    if action == "suspend":
        if status != Status.ACTIVE:
            raise InvalidState(action, status)
        after.pending_action = "suspend"
        after.reason = reason
        return _finish(mandate, after, now, command="suspend", command_reason=reason)
    if action == "resume":
        if status != Status.SUSPENDED:
            raise InvalidState(action, status)
        after.pending_action = "resume"
        after.reason = reason
        return _finish(mandate, after, now, command="resume", command_reason=reason)
    if action == "cancel":
        if status == Status.CANCELLED:
            return Outcome(mandate)  # deleting twice is the same as deleting once
        if status in TERMINAL:
            raise InvalidState(action, status)
        if status in (Status.ACTIVE, Status.SUSPENDED, Status.PENDING_BANK) and not (reason and reason.strip()):
            raise ReasonRequired("a signed mandate is cancelled with a reason")
        after.reason = reason.strip() if reason and reason.strip() else "deleted by the creditor"
        if mandate.mandate_number is None:
            # The invite has not come back: nothing exists at Twikey yet (see mark_prepared).
            after.base_status = Status.CANCELLED
            after.pending_action = None
            return _finish(mandate, after, now)
        after.pending_action = "cancel"
        return _finish(mandate, after, now, command="cancel", command_reason=after.reason)
    raise ValueError(f"unknown action {action!r}")


def command_failed(mandate: Mandate, action: str, code: str, message: str, now: datetime) -> Outcome:
    """sync-svc could not carry out a command at Twikey: record why, and stop pretending it
    happened (the status falls back to what the feed last said)."""
    after = mandate.copy()
    after.last_error = {"command": action, "code": code, "message": message, "at": now.isoformat()}
    if mandate.pending_action == action:
        after.pending_action = None
        if action == "cancel" and code == "err_mandate_invalid_state" and mandate.base_status in SIGNED:
            # Twikey says it is cancelled already; the feed will confirm.
            after.base_status = Status.CANCELLED
    after.reason = f"{action} failed at Twikey: {code}: {message}"
    return _finish(mandate, after, now, force="updated")


# --- Twikey's feed ------------------------------------------------------------------------------


def feed_status(message: FeedMessage, current: Status | None, scheme: str | None) -> Status:
    """The status a feed message says the mandate has (before the terminal rule)."""
    said = _TWIKEY_STATES.get((message.state or "").strip().upper())
    if message.change == "cancelled" or said == Status.CANCELLED:
        never_signed_b2b = scheme == "B2B" and current in (Status.REQUESTED, Status.PREPARED)
        if current == Status.PENDING_BANK or never_signed_b2b:
            return Status.REJECTED  # the debtor's bank refused the B2B mandate
        return Status.CANCELLED
    if said == Status.PENDING_BANK:
        return Status.PENDING_BANK
    if message.suspended is True or said == Status.SUSPENDED:
        return Status.SUSPENDED
    if message.suspended is False or said == Status.ACTIVE:
        return Status.ACTIVE
    if message.change == "signed":
        return Status.ACTIVE  # a new message in the feed is a signed mandate
    if current in (Status.ACTIVE, Status.SUSPENDED, Status.PENDING_BANK):
        return current
    return Status.ACTIVE  # only signed mandates are in the feed


def new_from_feed(message: FeedMessage, mandate_id: str, tenant_id: str, now: datetime) -> Mandate:
    """A mandate we have not seen (signed directly at Twikey, or known only after a feed reset)."""
    return Mandate(
        id=mandate_id,
        tenant_id=tenant_id,
        customer_number=message.customer_number or message.mandate_number,
        scheme=message.scheme or "CORE",
        base_status=Status.REQUESTED,  # placeholder; apply_feed sets the real one
        created_at=now,
        updated_at=now,
        version=0,
        mandate_number=message.mandate_number,
    )


def _stamp(message: FeedMessage) -> str:
    """A feed position that sorts as text: UTC time with fixed width, then the sequence."""
    when = message.event_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return f"{when}#{message.feed_seq:020d}"


def apply_feed(mandate: Mandate, message: FeedMessage, now: datetime) -> Outcome:
    """Apply one feed message: the status only from a message newer than the last applied one;
    each data field from a message newer than the one that last set that field."""
    after = mandate.copy()
    newer = mandate.feed_event_time is None or message.order > (mandate.feed_event_time, mandate.feed_seq or 0)
    # Version 0 = never published: a mandate just made from this message (see new_from_feed).
    current = None if mandate.version == 0 else mandate.base_status

    stamp = _stamp(message)
    values: dict[str, object] = {name: getattr(message, name) for name in _DATA_FIELDS}
    if message.max_amount_cents is not None:
        values["max_amount_cents"] = message.max_amount_cents or None  # MaxAmt "0" = no limit
    values["scheme"] = message.scheme
    for name, value in values.items():
        if name != "max_amount_cents" and (value is None or value == ""):
            continue
        if name == "max_amount_cents" and message.max_amount_cents is None:
            continue
        if stamp > after.field_stamps.get(name, ""):
            setattr(after, name, value)
            after.field_stamps[name] = stamp
    if message.customer_number and after.customer_number == after.mandate_number:
        after.customer_number = message.customer_number  # replace new_from_feed's placeholder

    if newer:
        after.feed_event_time = message.event_time
        after.feed_seq = message.feed_seq
        if mandate.base_status not in TERMINAL:
            after.base_status = feed_status(message, current, after.scheme)
            if message.change == "cancelled" or after.base_status in TERMINAL:
                after.reason = message.reason or after.reason
        pending = mandate.pending_action
        if pending in ACTION_TARGET and (after.base_status == ACTION_TARGET[pending] or after.base_status in TERMINAL):
            after.pending_action = None  # Twikey confirmed (or overtook) the ERP's command
    return _finish(mandate, after, now)


# --- time ---------------------------------------------------------------------------------------


def expire_if_unsigned(mandate: Mandate, now: datetime, after: timedelta) -> Outcome:
    """An invite nobody signed within ``after`` expires; the invite is withdrawn at Twikey so
    that its link stops working (a signature arriving later would otherwise meet a dead end)."""
    if mandate.status != Status.PREPARED or mandate.created_at + after > now:
        return Outcome(mandate)
    changed = mandate.copy()
    changed.base_status = Status.EXPIRED
    changed.pending_action = None
    changed.reason = f"not signed within {after.days} days"
    return _finish(mandate, changed, now, command="cancel", command_reason=changed.reason)
