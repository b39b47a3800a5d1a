"""Reconciliation as rules without I/O: Twikey's own record of what was paid, Koppel's bookings
and Twinfield's MEMO lines (with their matches) compared, every difference named.

A paid item is (kind ``transaction`` | ``paylink``, Twikey id); Twikey numbers the kinds
separately, so only the pair identifies it. Twikey's record is its feed replayed: the latest
entry of an item wins; ``failed`` after ``paid`` is a reversal.

Kinds of difference (``Difference.kind``) and the fix that is safe for each:

- ``paid_not_booked``: paid at Twikey, but Koppel has no booking for it, or the booking never
  reached Twinfield (no MEMO). Fix ``book``: create or reopen the booking; the booker looks up
  before it posts, so a MEMO that exists after all is never posted twice.
- ``booked_not_paid``: booked (in Koppel or Twinfield) but not paid (or reversed) at Twikey.
- ``booked_twice``: more than one MEMO payment line for one paid item.
- ``amount_mismatch``: the amounts of Twikey, the booking and the MEMO disagree.
- ``invoice_mismatch``: the MEMO carries another invoice number than the booking, or Twikey's
  reference names another collection.
- ``wrong_invoice_match``: the MEMO is matched, but not with the invoice line Koppel booked it
  against (or not matched although Koppel says it is).
- ``mandate_unknown``: a mandate signed at Twikey (and not cancelled there) whose number Koppel's
  mandate-svc never published: made in Twikey's dashboard, by another tool, or twice for one
  request. Fix ``adopt``, not here: bookkeeping does not own mandates; the difference names
  mandate-svc's unclaimed-mandates list, where the operator adopts (or ignores) it.

The payment kinds but the first get fix ``error`` (the booking goes on the errors list for a
person): money already in Twinfield is never moved automatically. Any difference can be ignored
with a note.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any
from urllib.parse import quote

from bookkeeping_svc.domain.booking import MAX_TEXT, last40, legacy_payment_description, payment_description

KINDS = (
    "paid_not_booked",
    "booked_not_paid",
    "booked_twice",
    "amount_mismatch",
    "invoice_mismatch",
    "wrong_invoice_match",
    "mandate_unknown",
)
FIX_FOR = {"paid_not_booked": "book", "mandate_unknown": "adopt"}  # every other kind: "error"
UNCLAIMED_MANDATE = "/v1/unclaimed-mandates/{number}"  # mandate-svc: POST …/adopt or …/ignore
BOOKED_STATES = ("booked", "matched", "reversing")  # a MEMO must exist
PAYMENT_SUFFIX = " betaling"


@dataclass(frozen=True)
class TwikeyItem:
    """Twikey's latest word on one paid item."""

    kind: str
    twikey_id: str
    amount_cents: int
    reference: str | None
    mandate_number: str | None
    paid_on: date | None
    reversed: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.twikey_id)


@dataclass(frozen=True)
class TwikeyMandate:
    """Twikey's latest word on one mandate that was signed there."""

    number: str
    state: str | None
    customer_number: str | None
    name: str | None
    signature_date: str | None
    cancelled: bool = False


@dataclass(frozen=True)
class Booking:
    id: str
    kind: str
    twikey_id: str | None
    reference: str
    collection_id: str
    invoice_number: str
    customer_number: str
    amount_cents: int
    status: str
    paid_on: date
    memo_number: str | None = None
    sales: tuple[str, str, int] | None = None  # (daybook, number, line) it was matched against

    @property
    def key(self) -> tuple[str, str] | None:
        return (self.kind, self.twikey_id) if self.twikey_id else None


@dataclass(frozen=True)
class LedgerLine:
    """One customer line from browse 100 (which has no description column: a line's text is
    known only from a full read of its transaction, or because the line is a booking's own)."""

    daybook: str
    number: str
    line: int
    period: str
    customer: str
    invoice_number: str
    value_cents: int  # signed: debit positive, a received payment negative
    matchstatus: str
    matchnumber: str
    description: str = ""

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.daybook, self.number, self.line)


@dataclass
class Difference:
    kind: str
    key: str  # stable over runs: what the difference is about
    detail: str
    twikey: dict[str, Any] | None = None
    koppel: dict[str, Any] | None = None
    twinfield: list[dict[str, Any]] = field(default_factory=list)
    booking_id: str | None = None
    payment_kind: str | None = None
    twikey_id: str | None = None
    amount_cents: int | None = None

    @property
    def fix(self) -> str:
        return FIX_FOR.get(self.kind, "error")


def unclaimed_mandate_path(number: str) -> str:
    """Where mandate-svc lets an operator adopt or ignore a mandate Koppel did not create."""
    return UNCLAIMED_MANDATE.format(number=quote(number, safe=""))


def net_mandates(messages: Iterable[dict[str, Any]]) -> dict[str, TwikeyMandate]:
    """Twikey's mandate feed messages (``signed`` / ``updated`` / ``cancelled``, with ``seq``) →
    the latest word per mandate number, for mandates that were signed; the other fields keep
    their latest known value (a cancellation carries no mandate)."""
    ordered = sorted(messages, key=lambda m: int(m["seq"]))
    signed: set[str] = set()
    latest: dict[str, dict[str, Any]] = {}
    for message in ordered:
        number = str(message["mandate_number"]).upper()
        if message["change"] == "signed":
            signed.add(number)
        known = latest.setdefault(number, {})
        known.update({name: value for name, value in message.items() if value not in (None, "")})
        known["cancelled"] = message["change"] == "cancelled" or message.get("state") == "CANCELLED"
    return {
        number: TwikeyMandate(
            number=number,
            state=known.get("state"),
            customer_number=known.get("customer_number"),
            name=known.get("name"),
            signature_date=known.get("signature_date"),
            cancelled=bool(known["cancelled"]),
        )
        for number, known in latest.items()
        if number in signed
    }


def _mandate_json(m: TwikeyMandate) -> dict[str, Any]:
    return {
        "mandate_number": m.number,
        "state": "CANCELLED" if m.cancelled else m.state,
        "customer_number": m.customer_number,
        "name": m.name,
        "signature_date": m.signature_date,
    }


def net_twikey(entries: Iterable[dict[str, Any]]) -> dict[tuple[str, str], TwikeyItem]:
    """Twikey's feed entries (``paid`` / ``failed``, with ``seq``) → the latest word per paid
    item; an item never paid is left out, ``failed`` after ``paid`` is a reversal."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    ever_paid: set[tuple[str, str]] = set()
    for entry in entries:
        key = (str(entry["kind"]), str(entry["twikey_id"]))
        if entry["state"] == "paid":
            ever_paid.add(key)
        known = latest.get(key)
        if known is None or int(entry["seq"]) >= int(known["seq"]):
            latest[key] = entry
    items = {}
    for key in ever_paid:
        entry = latest[key]
        at = entry.get("at")
        items[key] = TwikeyItem(
            kind=key[0],
            twikey_id=key[1],
            amount_cents=int(entry["amount_cents"]),
            reference=entry.get("reference"),
            mandate_number=entry.get("mandate_number"),
            paid_on=date.fromisoformat(str(at)[:10]) if at else None,
            reversed=entry["state"] != "paid",
        )
    return items


def _twikey_json(item: TwikeyItem | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {
        "kind": item.kind,
        "twikey_id": item.twikey_id,
        "amount_cents": item.amount_cents,
        "reference": item.reference,
        "mandate_number": item.mandate_number,
        "paid_on": item.paid_on.isoformat() if item.paid_on else None,
        "state": "reversed" if item.reversed else "paid",
    }


def _booking_json(b: Booking | None) -> dict[str, Any] | None:
    if b is None:
        return None
    return {
        "booking_id": b.id,
        "kind": b.kind,
        "twikey_id": b.twikey_id,
        "collection_id": b.collection_id,
        "invoice_number": b.invoice_number,
        "customer_number": b.customer_number,
        "amount_cents": b.amount_cents,
        "status": b.status,
        "paid_on": b.paid_on.isoformat(),
        "memo_number": b.memo_number,
    }


def _line_json(line: LedgerLine) -> dict[str, Any]:
    return {
        "daybook": line.daybook,
        "number": line.number,
        "line": line.line,
        "period": line.period,
        "customer": line.customer,
        "invoice_number": line.invoice_number,
        "value_cents": line.value_cents,
        "matchstatus": line.matchstatus,
        "matchnumber": line.matchnumber,
        "description": line.description,
    }


@dataclass
class Comparison:
    """Everything one run knows, and the differences it finds."""

    twikey: dict[tuple[str, str], TwikeyItem]
    bookings: list[Booking]
    memo_lines: list[LedgerLine]  # customer lines of the MEMO daybook in the window's periods
    invoice_lines: dict[tuple[str, str, int], LedgerLine]  # the sales lines bookings were matched to
    # (transaction number, line) → description, from full reads of the unclaimed payment lines
    memo_texts: dict[tuple[str, int], str] = field(default_factory=dict)
    since: date | None = None  # Twikey's items paid before this are outside the run
    mandates: dict[str, TwikeyMandate] = field(default_factory=dict)  # Twikey's signed mandates
    koppel_mandates: set[str] = field(default_factory=set)  # numbers Koppel published
    differences: list[Difference] = field(default_factory=list)

    def _add(
        self,
        kind: str,
        detail: str,
        item: TwikeyItem | None = None,
        booking: Booking | None = None,
        lines: Iterable[LedgerLine] = (),
        key: str | None = None,
    ) -> None:
        twikey_key = item.key if item else (booking.key if booking else None)
        self.differences.append(
            Difference(
                kind=kind,
                key=key or (f"{twikey_key[0]}:{twikey_key[1]}" if twikey_key else f"booking:{booking and booking.id}"),
                detail=detail,
                twikey=_twikey_json(item),
                koppel=_booking_json(booking),
                twinfield=[_line_json(line) for line in lines],
                booking_id=booking.id if booking else None,
                payment_kind=twikey_key[0] if twikey_key else None,
                twikey_id=twikey_key[1] if twikey_key else None,
                amount_cents=(item.amount_cents if item else booking.amount_cents if booking else None),
            )
        )

    def run(self) -> list[Difference]:
        by_key: dict[tuple[str, str], list[Booking]] = defaultdict(list)
        for b in self.bookings:
            if b.key is not None:
                by_key[b.key].append(b)
        claimed, extra, stray = self._memo_payments()
        for item in self.twikey.values():
            if self.since and item.paid_on and item.paid_on < self.since:
                continue
            self._twikey_side(item, by_key.get(item.key, []))
        for b in self.bookings:
            own = claimed.get(b.memo_number or "", [])
            self._koppel_side(b, own + extra.get(b.id, []))
        for line in stray:
            legacy = line.description.endswith(PAYMENT_SUFFIX)
            self._add(
                "booked_not_paid",
                f"MEMO {line.number} ({line.description}) is a payment Koppel has no booking for.",
                lines=[line],
                key=f"memo:{line.description}" if legacy else f"memo:{line.daybook}:{line.number}",
            )
        self._mandates_side()
        return self.differences

    def _memo_payments(
        self,
    ) -> tuple[dict[str, list[LedgerLine]], dict[str, list[LedgerLine]], list[LedgerLine]]:
        """The MEMO payment (credit) lines, each given to a booking: by the MEMO number the booking
        keeps; else, when its full read showed our text (only transactions with our cross-account
        line are read for it), to a booking of that invoice with that text: one without a MEMO
        number (its answer was lost), else the first (a second MEMO of one payment). Lines of
        ours that no booking takes are returned apart."""
        numbers = {b.memo_number for b in self.bookings if b.memo_number}
        # The invoice-number text with the invoice number; an older "<reference> betaling" names
        # the booking by itself.
        by_text: dict[tuple[str, str], list[Booking]] = defaultdict(list)
        for b in self.bookings:
            by_text[(payment_description(b.invoice_number), last40(b.invoice_number).lower())].append(b)
            by_text[(legacy_payment_description(b.reference), "")].append(b)
        claimed: dict[str, list[LedgerLine]] = defaultdict(list)
        extra: dict[str, list[LedgerLine]] = defaultdict(list)
        stray: list[LedgerLine] = []
        for line in self.memo_lines:
            if line.value_cents >= 0:
                continue
            if line.number in numbers:
                claimed[line.number].append(line)
                continue
            text = self.memo_texts.get((line.number, line.line), line.description)
            if not text:
                continue  # not read, or no cross-account line: not Koppel's
            line = replace(line, description=text)
            candidates = by_text.get((text, line.invoice_number.lower())) or by_text.get((text, ""), [])
            if candidates:
                target = next((b for b in candidates if not b.memo_number), candidates[0])
                extra[target.id].append(line)
            elif text.endswith(PAYMENT_SUFFIX) or payment_text_of(text, line.invoice_number):
                stray.append(line)
        return claimed, extra, stray

    def _mandates_side(self) -> None:
        """Every mandate signed at Twikey is one Koppel published; whenever it was signed (the
        window is about payments). A cancelled one can collect nothing and is left out."""
        known = {number.upper() for number in self.koppel_mandates}
        for m in self.mandates.values():
            if m.cancelled or m.number in known:
                continue
            who = ", ".join(part for part in (m.customer_number, m.name) if part) or "no customer"
            self.differences.append(
                Difference(
                    kind="mandate_unknown",
                    key=f"mandate:{m.number}",
                    detail=(
                        f"Mandate {m.number} ({who}, signed {m.signature_date or 'on an unknown date'}) is "
                        f"{(m.state or 'signed').lower()} at Twikey, but Koppel never created or adopted it: "
                        f"adopt or ignore it at {unclaimed_mandate_path(m.number)}."
                    ),
                    twikey=_mandate_json(m),
                    twikey_id=m.number,
                )
            )

    def _twikey_side(self, item: TwikeyItem, found: list[Booking]) -> None:
        if not found:
            if not item.reversed:
                self._add(
                    "paid_not_booked", f"Paid at Twikey ({item.kind} {item.twikey_id}); Koppel never booked it.", item
                )
            return
        b = found[0]
        if item.reversed and b.status in BOOKED_STATES[:2]:
            self._add("booked_not_paid", f"Reversed at Twikey, still booked as paid ({b.status}).", item, b)
        elif not item.reversed and b.status in ("reversed", "reversing"):
            self._add("paid_not_booked", f"Paid at Twikey, but the booking is {b.status}.", item, b)
        if item.amount_cents != b.amount_cents:
            self._add(
                "amount_mismatch",
                f"Twikey says {item.amount_cents / 100:.2f}, Koppel booked {b.amount_cents / 100:.2f}.",
                item,
                b,
                key=f"amount:{item.kind}:{item.twikey_id}",
            )
        if item.kind == "transaction" and item.reference and item.reference != b.collection_id:
            self._add(
                "invoice_mismatch",
                f"Twikey's reference {item.reference} names another collection than {b.collection_id}.",
                item,
                b,
                key=f"invoice:{item.kind}:{item.twikey_id}",
            )

    def _koppel_side(self, b: Booking, lines: list[LedgerLine]) -> None:
        item = self.twikey.get(b.key) if b.key else None
        if b.key is not None and item is None and b.status != "reversed":
            self._add("booked_not_paid", "Booked in Koppel, but Twikey has no payment for it.", None, b, lines)
        if not lines:
            if b.status in BOOKED_STATES:
                self._add(
                    "paid_not_booked",
                    f"Koppel says {b.status} (MEMO {b.memo_number}), but Twinfield has no MEMO for it.",
                    item,
                    b,
                    key=f"memo-missing:{b.id}",
                )
            return
        if len(lines) > 1:
            numbers = ", ".join(line.number for line in lines)
            self._add("booked_twice", f"{len(lines)} MEMOs for one payment: {numbers}.", item, b, lines)
        line = lines[0]
        if -line.value_cents != b.amount_cents:
            self._add(
                "amount_mismatch",
                f"MEMO {line.number} says {-line.value_cents / 100:.2f}, Koppel booked {b.amount_cents / 100:.2f}.",
                item,
                b,
                lines,
                key=f"memo-amount:{b.id}",
            )
        if line.invoice_number.lower() != last40(b.invoice_number).lower():
            self._add(
                "invoice_mismatch",
                f"MEMO {line.number} carries invoice {line.invoice_number}, Koppel booked {b.invoice_number}.",
                item,
                b,
                lines,
                key=f"memo-invoice:{b.id}",
            )
        if b.status == "matched":
            self._check_match(b, item, line)

    def _check_match(self, b: Booking, item: TwikeyItem | None, line: LedgerLine) -> None:
        invoice = self.invoice_lines.get(b.sales) if b.sales else None
        if line.matchstatus != "matched":
            problem = f"Koppel matched MEMO {line.number}, but Twinfield shows it {line.matchstatus}."
        elif invoice is None:
            return  # the invoice line was not read (outside what this run looked at)
        elif invoice.matchnumber != line.matchnumber or invoice.customer != line.customer:
            problem = (
                f"MEMO {line.number} is matched (match {line.matchnumber}), but not with invoice "
                f"{invoice.daybook} {invoice.number} ({invoice.invoice_number}, match {invoice.matchnumber or '-'})."
            )
        else:
            return
        lines = [line] + ([invoice] if invoice else [])
        self._add("wrong_invoice_match", problem, item, b, lines, key=f"match:{b.id}")


def payment_text_of(text: str, invoice_number: str) -> bool:
    """Whether a line text can be the description Koppel gives a payment of this invoice number
    (as the line carries it: the last 40 characters): the first 40 characters of the same number,
    so the two overlap (a number longer than 80 characters is not recognised this way)."""
    if not text or not invoice_number:
        return False
    if len(invoice_number) < MAX_TEXT:
        return text == invoice_number
    return len(text) == MAX_TEXT and any(text[k:] == invoice_number[: MAX_TEXT - k] for k in range(MAX_TEXT))


def unclaimed_payments(memo_lines: Iterable[LedgerLine], bookings: Iterable[Booking]) -> list[LedgerLine]:
    """The MEMO payment lines (credit) no booking claims by its MEMO number: the only ones whose
    transaction is read in full to learn whether they are Koppel's (1 credit each). A clean
    ledger has none; a bookkeeper's own memorial payments on customers are read every run."""
    numbers = {b.memo_number for b in bookings if b.memo_number}
    return [line for line in memo_lines if line.value_cents < 0 and line.number not in numbers]


def periods(since: date, until: date) -> list[str]:
    """Twinfield's periods (``YYYY/MM``) from ``since`` to ``until``, both included."""
    found = []
    year, month = since.year, since.month
    while (year, month) <= (until.year, until.month):
        found.append(f"{year}/{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def number_ranges(numbers: Iterable[int], width: int) -> list[tuple[int, int]]:
    """Transaction numbers gathered into ranges no wider than ``width``: one browse each."""
    ranges: list[tuple[int, int]] = []
    for number in sorted(set(numbers)):
        if ranges and number - ranges[-1][0] < width:
            ranges[-1] = (ranges[-1][0], number)
        else:
            ranges.append((number, number))
    return ranges
