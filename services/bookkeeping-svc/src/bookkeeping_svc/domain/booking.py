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
and cross-account line (service_layer/booker.py). MEMOs posted before this convention carry
"<reference> betaling" / "<reference> storno" and are still recognised by that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

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
