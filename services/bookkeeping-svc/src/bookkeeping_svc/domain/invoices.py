"""Finding the open sales booking a payment belongs to, from browse-100 rows (customer lines).

Rules: the invoice number must be the one on the payment (its last 40 characters, as stored);
the row must be a debit (an invoice, not a payment or credit note); the open amount must equal
the paid amount; when several rows qualify, the customer decides: the customer code equal to our
customer number, then the customer's e-mail (from the customer dimension) equal to the payer's.
No date window: an invoice of any year is found.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from bookkeeping_svc.domain.booking import Payment, last40


@dataclass(frozen=True)
class OpenItem:
    """One customer line from browse 100, with its key for ``<match>``."""

    office: str
    daybook: str
    number: str
    line: int
    customer: str
    invoice_number: str
    value_cents: int  # signed: debit positive
    open_cents: int  # signed
    matchstatus: str
    description: str = ""


@dataclass(frozen=True)
class Found:
    item: OpenItem


@dataclass(frozen=True)
class NeedEmails:
    """Several candidates: the customers' e-mail addresses are needed to choose."""

    customers: tuple[str, ...]


@dataclass(frozen=True)
class NotFound:
    code: str  # invoice_not_found | amount_mismatch | already_matched | invoice_in_payment_run | ambiguous_invoice
    message: str


Resolution = Found | NeedEmails | NotFound


def resolve_invoice(
    payment: Payment,
    rows: list[OpenItem],
    memo_daybook: str = "MEMO",
    emails: dict[str, str | None] | None = None,
) -> Resolution:
    number = last40(payment.invoice_number).lower()
    invoices = [r for r in rows if r.invoice_number.lower() == number and r.value_cents > 0]
    if not invoices:
        return NotFound(
            "invoice_not_found",
            f"Geen verkoopboeking met factuurnummer {last40(payment.invoice_number)} gevonden.",
        )
    available = [r for r in invoices if r.matchstatus == "available"]
    if not available and any(r.matchstatus == "proposed" for r in invoices):
        # In a payment or collection run proposal: still open, but not ours to match now.
        return NotFound(
            "invoice_in_payment_run",
            f"Factuur {last40(payment.invoice_number)} staat in een betaalvoorstel in Twinfield.",
        )
    if not available:
        return NotFound(
            "already_matched",
            f"Factuur {last40(payment.invoice_number)} is al afgeletterd (betaald) in Twinfield.",
        )
    exact = [r for r in available if r.open_cents == payment.amount_cents]
    if not exact:
        opens = ", ".join(f"{r.open_cents / 100:.2f}" for r in available)
        return NotFound(
            "amount_mismatch",
            f"Openstaand bedrag van factuur {last40(payment.invoice_number)} is {opens}, "
            f"betaald is {payment.amount_cents / 100:.2f}.",
        )
    # A sales booking before a counter memo of an earlier reversal (both are valid open items).
    sales = [r for r in exact if r.daybook != memo_daybook]
    pool = sales or exact
    if len(pool) == 1:
        return Found(pool[0])
    same_code = [r for r in pool if r.customer.lower() == payment.customer_number.lower()]
    if len(same_code) == 1:
        return Found(same_code[0])
    pool = same_code or pool
    customers = tuple(sorted({r.customer for r in pool}))
    if emails is None:
        return NeedEmails(customers)
    wanted = (payment.customer_email or "").strip().lower()
    by_email = [r for r in pool if wanted and (emails.get(r.customer) or "").strip().lower() == wanted]
    if len({r.customer for r in by_email}) == 1:
        return Found(by_email[0])
    return NotFound(
        "ambiguous_invoice",
        f"Factuurnummer {last40(payment.invoice_number)} komt {len(pool)} keer open voor "
        f"(debiteuren {', '.join(customers)}); het e-mailadres beslist niet.",
    )


def find_own_memo(
    rows: list[OpenItem], invoice_number: str, descriptions: Collection[str], claimed: Collection[str] = ()
) -> OpenItem | None:
    """Our MEMO customer line for one booking, found by invoice number and one of our
    descriptions, among MEMOs no other booking claims by number: the look-up that precedes any
    new post after an unknown outcome. (The description carries the invoice number, not our
    reference, so a second payment of one invoice is told apart by the MEMO numbers the earlier
    bookings keep.) Rows carry a description only when their transaction was read and has our
    cross-account line."""
    number = last40(invoice_number).lower()
    for row in rows:
        if row.invoice_number.lower() == number and row.description in descriptions and row.number not in claimed:
            return row
    return None
