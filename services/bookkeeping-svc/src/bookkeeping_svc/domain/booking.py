"""A payment's booking in Twinfield, as rules without I/O.

States::

    open ──post──▶ posting ──answer──▶ booked ──match──▶ matched ──reversal──▶ reversing ──▶ reversed
      │               │ (timeout: outcome unknown; look up before any new post)
      └──▶ error ◀────┘            paused (consent lost; back to open when reconnected)

- ``open``: waiting to be posted (also after a retry).
- ``posting``: a MEMO post was sent and its outcome is not known (a timeout or 5xx after which
  Twinfield may have applied the write). The next round looks the booking up by our reference
  before it posts anything again: this is what makes "never twice" hold against Twinfield.
- ``booked``: the MEMO exists (``memo_number``); the match is still to do.
- ``matched``: payment and invoice are matched ("afgeletterd"). The end of the happy path.
- ``error``: on the errors list with Twinfield's message and a hint; ``retry`` puts it back.
- ``paused``: the tenant's Twinfield consent is gone; nothing is attempted until it reconnects.
- ``reversing`` / ``reversed``: a reversed collection's counter MEMO to post / posted.

The text rules come from the CCV→Twinfield connector our users know: the invoice number on the
lines keeps the invoice (order) number's **last** 40 characters (long order numbers differ at the
end), the description its **first** 40. A reversal's counter MEMO is told apart by its sides
(cross-account credit, debtor debit) and by the marker "Storno " in front of the number, where
the 40-character cut cannot reach it. Our reference (``TX…``/``PL…``) goes where Twinfield lets
us find it again: the booking keeps the MEMO's number, the optional header free-text field
carries the reference, and a MEMO is recognised by its invoice number, amount, side, description
and cross-account line (service_layer/booking/post.py). MEMOs posted before this convention carry
"<reference> betaling" / "<reference> storno" and are still recognised by that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

MAX_TEXT = 40


class Status(StrEnum):
    OPEN = "open"
    POSTING = "posting"
    BOOKED = "booked"
    MATCHED = "matched"
    ERROR = "error"
    PAUSED = "paused"
    REVERSING = "reversing"
    REVERSED = "reversed"


# The console's three tabs (like the CCV dashboard): what is still on its way, what is done,
# what needs a person.
TABS: dict[str, tuple[Status, ...]] = {
    "open": (Status.OPEN, Status.POSTING, Status.BOOKED, Status.PAUSED, Status.REVERSING),
    "booked": (Status.MATCHED, Status.REVERSED),
    "error": (Status.ERROR,),
}

# Where the booking engine has work to do.
ACTIVE = (Status.OPEN, Status.POSTING, Status.BOOKED, Status.REVERSING)
RETRYABLE = (Status.ERROR, Status.OPEN, Status.BOOKED, Status.POSTING, Status.REVERSING)


def first40(text: str) -> str:
    return text[:MAX_TEXT]


def last40(text: str) -> str:
    return text[-MAX_TEXT:]


REVERSAL_MARKER = "Storno "


def payment_description(invoice_number: str) -> str:
    """A payment MEMO's line text: the invoice (order) number's first 40 characters."""
    return first40(invoice_number)


def reversal_description(invoice_number: str) -> str:
    """A counter MEMO's line text: the marker first, so that the 40-character cut keeps it."""
    return first40(f"{REVERSAL_MARKER}{invoice_number}")


def legacy_payment_description(reference: str) -> str:
    """The text of payment MEMOs posted before the invoice-number convention."""
    return first40(f"{reference} betaling")


def legacy_reversal_description(reference: str) -> str:
    return first40(f"{reference} storno")


def own_descriptions(reference: str, invoice_number: str, reversal: bool = False) -> frozenset[str]:
    """The texts our MEMO (or counter MEMO) for one booking can carry, old convention included."""
    if reversal:
        return frozenset({reversal_description(invoice_number), legacy_reversal_description(reference)})
    return frozenset({payment_description(invoice_number), legacy_payment_description(reference)})


def amount_text(cents: int) -> str:
    """Twinfield amounts: positive, a dot and two decimals."""
    if cents < 0:
        raise ValueError("Twinfield line values are positive; the sign is debit/credit")
    return f"{cents // 100}.{cents % 100:02d}"


def parse_amount(text: str) -> int:
    """A signed Twinfield value ("-121.00", "1210.5") in cents."""
    raw = text.strip()
    negative = raw.startswith("-")
    raw = raw.lstrip("+-")
    whole, _, frac = raw.partition(".")
    cents = int(whole or "0") * 100 + int((frac + "00")[:2])
    return -cents if negative else cents


@dataclass(frozen=True)
class Payment:
    """What we know of a paid collection when we book it."""

    reference: str  # "TX<id>"/"PL<id>" (domain/identity.py), the bare id of older bookings, or the collection id
    invoice_number: str
    customer_number: str
    customer_email: str | None
    amount_cents: int
    method: str  # direct_debit | paylink
    paid_on: date


@dataclass(frozen=True)
class Line:
    dim1: str
    debitcredit: str  # debit | credit
    value_cents: int
    description: str
    dim2: str | None = None
    invoicenumber: str | None = None


@dataclass(frozen=True)
class Memo:
    """One MEMO transaction: header facts and its lines (line ids are 1..n in order)."""

    daybook: str
    date: date
    lines: tuple[Line, ...]
    freetext: tuple[int, str] | None = None  # (1..3, value) when the tenant configured a field

    @property
    def customer_line_id(self) -> int:
        """The matchable line: the one on the debtor account with a customer (id is 1-based)."""
        for index, line in enumerate(self.lines, start=1):
            if line.dim2:
                return index
        raise ValueError("a payment memo has a customer line")


@dataclass(frozen=True)
class Accounts:
    """A tenant's chart choices: debtor control account and cross-account per payment method."""

    debtor_account: str = "1300"
    cross_accounts: dict[str, str] = field(default_factory=lambda: {"direct_debit": "1105", "paylink": "1110"})
    memo_daybook: str = "MEMO"
    freetext_field: int | None = None

    def cross_account(self, method: str) -> str:
        try:
            return self.cross_accounts[method]
        except KeyError:
            raise MissingCrossAccount(method) from None


class MissingCrossAccount(Exception):
    def __init__(self, method: str) -> None:
        super().__init__(f"no cross-account configured for payment method {method!r}")
        self.method = method


def payment_memo(payment: Payment, customer_code: str, accounts: Accounts) -> Memo:
    """The two lines of a received payment: cross-account debit, debtor account credit."""
    description = payment_description(payment.invoice_number)
    return Memo(
        daybook=accounts.memo_daybook,
        date=payment.paid_on,
        lines=(
            Line(
                dim1=accounts.cross_account(payment.method),
                debitcredit="debit",
                value_cents=payment.amount_cents,
                description=description,
            ),
            Line(
                dim1=accounts.debtor_account,
                dim2=customer_code,
                debitcredit="credit",
                value_cents=payment.amount_cents,
                invoicenumber=last40(payment.invoice_number),
                description=description,
            ),
        ),
        freetext=(accounts.freetext_field, first40(payment.reference)) if accounts.freetext_field else None,
    )


def reversal_memo(payment: Payment, customer_code: str, accounts: Accounts, on: date) -> Memo:
    """The counter MEMO of a reversed payment: the mirror of ``payment_memo``. Its customer line
    is a debit open item carrying the invoice number, so the receivable is open again."""
    description = reversal_description(payment.invoice_number)
    return Memo(
        daybook=accounts.memo_daybook,
        date=on,
        lines=(
            Line(
                dim1=accounts.cross_account(payment.method),
                debitcredit="credit",
                value_cents=payment.amount_cents,
                description=description,
            ),
            Line(
                dim1=accounts.debtor_account,
                dim2=customer_code,
                debitcredit="debit",
                value_cents=payment.amount_cents,
                invoicenumber=last40(payment.invoice_number),
                description=description,
            ),
        ),
        freetext=(accounts.freetext_field, first40(payment.reference)) if accounts.freetext_field else None,
    )


# -- the aggregate -------------------------------------------------------------------------------


class Published(StrEnum):
    """The public event a transition publishes (``booking.*``)."""

    BOOKED = "booked"  # matched: booked and matched in Twinfield
    FAILED = "failed"  # on the errors list
    REVERSED = "reversed"


class IllegalTransition(Exception):
    """A transition the state drawing above does not allow from where the booking stands."""

    code = "booking_illegal_transition"

    def __init__(self, transition: str, status: str) -> None:
        super().__init__(f"a booking cannot {transition} while {status}")
        self.transition = transition
        self.status = status


@dataclass(frozen=True)
class Outcome:
    """What a transition changed (column values of the booking) and the event it publishes.
    ``changes`` empty: nothing to write."""

    changes: dict[str, Any]
    event: Published | None = None

    @property
    def changed(self) -> bool:
        return bool(self.changes)


NOTHING = Outcome({})
MAX_BACKOFF_DOUBLINGS = 6
PAUSABLE = ACTIVE
# The states a resume may apply to; ``Booking.resumes`` decides (a failed booking only when it
# failed on lost consent).
RESUMABLE = (Status.PAUSED, Status.ERROR)


@dataclass
class Booking:
    """A booking's state: what the transitions read and change. Every change goes through a
    method below, which refuses what the state drawing does not allow (``IllegalTransition``)
    and returns the ``Outcome`` to store and publish."""

    status: Status
    memo_number: str | None = None
    memo_line: int | None = None
    reverse_requested: bool = False
    paused_from: Status | None = None
    customer_code: str | None = None
    error_code: str | None = None
    transient_failures: int = 0
    attempts: int = 0
    matched_at: datetime | None = None
    reversed_on: date | None = None

    @classmethod
    def of(cls, row: Any) -> Booking:
        """The state of a stored booking (any object with the columns as attributes)."""
        return cls(
            status=Status(row.status),
            memo_number=row.memo_number,
            memo_line=row.memo_line,
            reverse_requested=bool(row.reverse_requested),
            paused_from=Status(row.paused_from) if row.paused_from else None,
            customer_code=row.customer_code,
            error_code=row.error_code,
            transient_failures=row.transient_failures or 0,
            attempts=row.attempts or 0,
            matched_at=row.matched_at,
            reversed_on=row.reversed_on,
        )

    def _require(self, transition: str, *allowed: Status) -> None:
        if self.status not in allowed:
            raise IllegalTransition(transition, self.status)

    def _apply(self, changes: dict[str, Any], event: Published | None = None) -> Outcome:
        for name, value in changes.items():
            if name in _STATE_FIELDS:
                setattr(self, name, value)
        return Outcome(changes, event)

    def _posted_status(self) -> Status:
        # A collection reversed while its MEMO was on its way: the counter MEMO is next.
        return Status.REVERSING if self.reverse_requested else Status.BOOKED

    # -- posting ---------------------------------------------------------------------------------

    def post(self, office: str, customer_code: str, sales: tuple[str, str, int]) -> Outcome:
        """The MEMO is about to be sent: from here an unanswered post is looked up, not repeated."""
        self._require("post", Status.OPEN, Status.POSTING)
        if self.reverse_requested:
            raise IllegalTransition("post", "reversed")
        daybook, number, line = sales
        return self._apply(
            {
                "status": Status.POSTING,
                "office": office,
                "customer_code": customer_code,
                "sales_daybook": daybook,
                "sales_number": number,
                "sales_line": line,
                "attempts": self.attempts + 1,
            }
        )

    def answer(self, memo_number: str, memo_line: int, now: datetime) -> Outcome:
        """Twinfield booked the MEMO."""
        self._require("answer", Status.POSTING)
        return self._apply(
            {
                "status": self._posted_status(),
                "memo_number": memo_number,
                "memo_line": memo_line,
                "booked_at": now,
                "transient_failures": 0,
                "error_code": None,
                "error_message": None,
                "hint": None,
                "next_attempt_at": now,
            }
        )

    def found_existing(self, memo_number: str, memo_line: int, office: str, customer: str, now: datetime) -> Outcome:
        """Our MEMO is already in Twinfield (an earlier post whose answer was lost): never again."""
        self._require("find its MEMO", Status.OPEN, Status.POSTING)
        return self._apply(
            {
                "status": self._posted_status(),
                "memo_number": memo_number,
                "memo_line": memo_line,
                "office": office,
                "customer_code": self.customer_code or customer,
                "booked_at": now,
                "error_code": None,
                "next_attempt_at": now,
            }
        )

    def not_posted(self) -> Outcome:
        """Reversed while its post was unanswered, and the post did not land: nothing to undo."""
        self._require("close unposted", Status.OPEN, Status.POSTING)
        if not self.reverse_requested:
            raise IllegalTransition("close unposted", self.status)
        return self._apply({"status": Status.REVERSED}, Published.REVERSED)

    def timeout(
        self, code: str, message: str, attempts: int, backoff: timedelta, now: datetime, hint: str | None = None
    ) -> Outcome:
        """Nothing was applied, or we look before acting again: try later (doubling the wait),
        and after ``attempts`` failures put the booking on the errors list with ``code``."""
        self._require("time out", *ACTIVE)
        failures = self.transient_failures + 1
        if failures >= attempts:
            return self.error(code, message, hint)
        delay = backoff * (2 ** min(failures, MAX_BACKOFF_DOUBLINGS))
        return self._apply(
            {"transient_failures": failures, "next_attempt_at": now + delay, "error_message": message[:2000]}
        )

    def error(self, code: str, message: str, hint: str | None = None) -> Outcome:
        """On the errors list: a person has to act (``retry`` puts it back)."""
        self._require("fail", *ACTIVE)
        return self._apply(
            {"status": Status.ERROR, "error_code": code, "error_message": message[:2000], "hint": hint},
            Published.FAILED,
        )

    # -- matching --------------------------------------------------------------------------------

    def match(self, now: datetime) -> Outcome:
        """Payment and invoice are matched ("afgeletterd")."""
        self._require("match", Status.BOOKED)
        if self.memo_number is None:
            raise IllegalTransition("match", "without a MEMO")
        return self._apply(
            {
                "status": Status.MATCHED,
                "matched_at": now,
                "transient_failures": 0,
                "error_code": None,
                "error_message": None,
                "hint": None,
            },
            Published.BOOKED,
        )

    # -- operators and consent -------------------------------------------------------------------

    def retry(self, now: datetime) -> Outcome:
        """Back to work from where the booking stands: a posted MEMO is not posted again, and
        without a MEMO number the next round looks first (one read credit buys the certainty that
        an earlier, unanswered post is not repeated)."""
        self._require("retry", *RETRYABLE)
        changes: dict[str, Any] = {"transient_failures": 0, "next_attempt_at": now}
        if self.status == Status.ERROR:
            changes["status"] = requeued_status(self.reverse_requested, self.memo_number is not None)
        return self._apply(changes)

    def pause(self, reason: str, hint: str) -> Outcome:
        """The tenant's consent is gone. What it was doing stays visible in ``paused_from``."""
        self._require("pause", *PAUSABLE)
        return self._apply(
            {
                "status": Status.PAUSED,
                "paused_from": self.status,
                "error_code": "auth_lost",
                "error_message": reason,
                "hint": hint,
            }
        )

    def resumes(self) -> bool:
        return self.status == Status.PAUSED or (self.status == Status.ERROR and self.error_code == "auth_lost")

    def resume(self, now: datetime) -> Outcome:
        """Reconnected: back to the state it was paused in (a booking that failed on lost consent
        too): a posted MEMO is matched, an unknown outcome is looked up, a reversal goes on."""
        if not self.resumes():
            raise IllegalTransition("resume", self.status)
        status = self.paused_from or resumed_status(self.memo_number is not None)
        return self._apply(
            {
                "status": status,
                "paused_from": None,
                "error_code": None,
                "error_message": None,
                "hint": None,
                "transient_failures": 0,
                "next_attempt_at": now,
            }
        )

    # -- reconciliation --------------------------------------------------------------------------

    def reopen(self, now: datetime) -> Outcome:
        """Twikey says paid, Twinfield shows no booking: book it again. ``posting`` means "look up,
        then post", so a MEMO that is there after all is found, never posted twice. Not while
        paused (nothing is attempted) or while a reversal is under way."""
        if self.status in (Status.PAUSED, Status.REVERSING):
            raise IllegalTransition("reopen", self.status)
        return self._apply(
            {
                "status": Status.POSTING,
                "memo_number": None,
                "memo_line": None,
                "matched_at": None,
                "reverse_requested": False,
                "error_code": None,
                "error_message": None,
                "hint": None,
                "transient_failures": 0,
                "next_attempt_at": now,
            }
        )

    def open_error(self, code: str, message: str, hint: str) -> Outcome:
        """An operator puts a reconciliation difference on the errors list, whatever the booking's
        state; ``retry`` picks it up from what it keeps (MEMO, reversal)."""
        return self._apply({"status": Status.ERROR, "error_code": code, "error_message": message[:2000], "hint": hint})

    # -- reversals -------------------------------------------------------------------------------

    def reverse(self, on: date, now: datetime) -> Outcome:
        """The collection was reversed. Never in Twinfield: closed without a booking. Posted (or
        maybe posted): the counter MEMO is booked once the MEMO is certain. A second reversal
        changes nothing."""
        if self.reverse_requested or self.status in (Status.REVERSING, Status.REVERSED):
            return NOTHING
        maybe_posted = Status.POSTING in (self.status, self.paused_from) or self.error_code == "unknown_outcome"
        if self.memo_number is None and not maybe_posted:
            return self._apply(
                {"status": Status.REVERSED, "reverse_requested": True, "reversed_on": on, "paused_from": None},
                Published.REVERSED,
            )
        changes: dict[str, Any] = {"reverse_requested": True, "reversed_on": on, "next_attempt_at": now}
        if self.status == Status.PAUSED:
            changes["paused_from"] = Status.REVERSING if self.memo_number else Status.POSTING
        elif self.status in (Status.BOOKED, Status.MATCHED, Status.ERROR):
            changes["status"] = Status.REVERSING
        return self._apply(changes)

    def counter_posting(self) -> Outcome:
        """The counter MEMO is about to be sent."""
        self._require("post its counter MEMO", Status.REVERSING)
        return self._apply({"reversal_posting": True})

    def counter_booked(self, number: str) -> Outcome:
        """The counter MEMO is in Twinfield (posted now, or found from an earlier post)."""
        self._require("book its counter MEMO", Status.REVERSING)
        return self._apply(
            {"status": Status.REVERSED, "reversal_memo_number": number, "reversal_posting": False}, Published.REVERSED
        )


_STATE_FIELDS = frozenset(f.name for f in fields(Booking))

K = TypeVar("K")


@dataclass
class Each(Generic[K]):
    """One transition applied to many bookings: the outcomes to store (by the key each booking
    came with) and the keys of those whose state refused it, which stay as they are."""

    outcomes: list[tuple[K, Outcome]] = field(default_factory=list)
    refused: list[K] = field(default_factory=list)


def each(bookings: Iterable[tuple[K, Booking]], transition: Callable[[Booking], Outcome]) -> Each[K]:
    """Pause a tenant's bookings, resume them, requeue them: every booking goes through its own
    transition, so a bulk change can never do what one booking's transition would refuse."""
    done: Each[K] = Each()
    for key, booking in bookings:
        try:
            outcome = transition(booking)
        except IllegalTransition:
            done.refused.append(key)
            continue
        if outcome.changed:
            done.outcomes.append((key, outcome))
    return done


def opened(consent_lost: bool) -> dict[str, Any]:
    """A new booking's state: open, or paused (to resume as open) while the tenant's consent is
    lost."""
    if consent_lost:
        return {"status": Status.PAUSED, "paused_from": Status.OPEN}
    return {"status": Status.OPEN}


def reversed_unpaid(on: date) -> dict[str, Any]:
    """A booking made by a reversal we heard of before the payment: nothing to book, and a late
    ``collection.paid`` for it is a duplicate."""
    return {"status": Status.REVERSED, "reverse_requested": True, "reversed_on": on}


def resumed_status(has_memo: bool) -> Status:
    """Where a booking paused (or failed) on lost consent without a recorded state picks up."""
    return Status.BOOKED if has_memo else Status.OPEN


def requeued_status(reverse_requested: bool, has_memo: bool) -> Status:
    """Where a failed booking picks up again when retried."""
    if reverse_requested:
        return Status.REVERSING
    if has_memo:
        return Status.BOOKED
    return Status.POSTING
