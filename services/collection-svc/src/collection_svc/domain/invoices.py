"""What makes an invoice acceptable, and when two postings of one invoice number are the same.

Customers need not be known here: collection-svc learns customers only from mandate events, and an
invoice for a customer without a mandate is exactly the case a pay link is for. So an unknown
customer is accepted and skipped with ``no_mandate`` (and offered a pay link), not refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import date

MAX_AMOUNT_CENTS = 99_999_999_99  # SEPA's maximum instruction amount (999,999,999.99 EUR)


@dataclass(frozen=True)
class InvoiceInput:
    invoice_number: str
    customer_number: str
    customer_name: str | None
    customer_email: str | None
    amount_cents: int
    currency: str
    invoice_date: date
    due_date: date
    description: str | None
    subscription_reference: str | None


@dataclass(frozen=True)
class FieldError:
    field: str
    rule: str
    message: str


def validate(invoice: InvoiceInput) -> list[FieldError]:
    errors: list[FieldError] = []
    if invoice.amount_cents <= 0:
        errors.append(FieldError("amount_cents", "positive", "amount_cents must be above 0"))
    elif invoice.amount_cents > MAX_AMOUNT_CENTS:
        errors.append(FieldError("amount_cents", "sepa_maximum", "amount_cents is above the SEPA maximum"))
    if invoice.currency != "EUR":
        errors.append(FieldError("currency", "eur_only", "SEPA Direct Debit collects in EUR only"))
    if invoice.due_date < invoice.invoice_date:
        errors.append(FieldError("due_date", "not_before_invoice_date", "due_date is before invoice_date"))
    return errors


def fingerprint(invoice: InvoiceInput) -> str:
    """A stable hash of everything the ERP sent: equal postings are the same invoice."""
    raw = json.dumps(asdict(invoice), sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def differences(a: InvoiceInput, b: InvoiceInput) -> list[str]:
    """Fields in which two postings of one invoice number differ."""
    left, right = asdict(a), asdict(b)
    return sorted(k for k in left if left[k] != right[k])
