"""What makes an invoice acceptable, and when two postings of one invoice number are the same.

Customers need not be known here: collection-svc learns customers only from mandate events, and an
invoice for a customer without a mandate is exactly the case a pay link is for. So an unknown
customer is accepted and skipped with ``no_mandate`` (and offered a pay link), not refused.

An accepted invoice must be one Twikey will collect and Twinfield will book, so the limits of both
are checked here, before anything is stored (the limits and their sources are in the README):

- texts that reach Twikey keep to the SEPA character set (``domain.texts``): the description (the
  transaction's message and the pay link's title, ≤ 140), the customer's name (the pay link's first
  and last name, ≤ 50 each), and the invoice number when the message is made from it;
- lengths Twikey takes on pay links: customer number ≤ 50, e-mail ≤ 70;
- the invoice number is not blank and at most 40 characters, Twinfield's ``invoicenumber`` is the
  last 40: longer numbers could match another invoice's booking;
- amount 1 cent to 999,999,999.99 EUR; dates within a window around today.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from dataclasses import field as dataclass_field
from datetime import date, timedelta
from typing import Any

from collection_svc.domain.texts import BadCharacter, first_bad_character, transliterate

MAX_AMOUNT_CENTS = 99_999_999_999  # SEPA's maximum instruction amount (999,999,999.99 EUR)
MESSAGE_MAX = 140  # Twikey: transaction ``message`` and pay link ``title``
NAME_PART_MAX = 50  # Twikey pay link ``firstname`` / ``lastname``
CUSTOMER_NUMBER_MAX = 50  # Twikey ``customerNumber`` (invite and pay link)
EMAIL_MAX = 70  # Twikey pay link ``email``
INVOICE_NUMBER_MAX = 40  # Twinfield ``invoicenumber`` is the last 40 characters of the number
MAX_INVOICE_AGE = timedelta(days=366)  # invoice_date at most this long before today
MAX_INVOICE_AHEAD = timedelta(days=366)  # … and at most this long after today
MAX_PAYMENT_TERM = timedelta(days=366)  # due_date at most this long after invoice_date
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
    details: dict[str, Any] = dataclass_field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "rule": self.rule, "message": self.message, **self.details}


def default_message(invoice_number: str) -> str:
    """What the debtor's statement says when the invoice has no description."""
    return f"Invoice {invoice_number}"


def normalise(invoice: InvoiceInput, transliterate_text: bool) -> InvoiceInput:
    """Identifiers stripped of surrounding spaces; with the tenant's ``transliterate_text`` the
    texts that reach Twikey transliterated into the SEPA set (the statement text made from the
    invoice number becomes the description, the number itself is never changed)."""
    invoice = replace(
        invoice, invoice_number=invoice.invoice_number.strip(), customer_number=invoice.customer_number.strip()
    )
    if not transliterate_text:
        return invoice
    description = invoice.description
    if description is None and first_bad_character(default_message(invoice.invoice_number)):
        description = default_message(invoice.invoice_number)
    return replace(
        invoice,
        description=_transliterated(description),
        customer_name=_transliterated(invoice.customer_name),
    )


def _transliterated(text: str | None) -> str | None:
    if text is None:
        return None
    return transliterate(text) or text  # nothing left: keep it, so the refusal names the character


def validate(invoice: InvoiceInput, today: date) -> list[FieldError]:
    errors: list[FieldError] = []
    if invoice.amount_cents <= 0:
        errors.append(FieldError("amount_cents", "positive", "amount_cents must be above 0"))
    elif invoice.amount_cents > MAX_AMOUNT_CENTS:
        errors.append(FieldError("amount_cents", "sepa_maximum", "amount_cents is above the SEPA maximum"))
    if invoice.currency != "EUR":
        errors.append(FieldError("currency", "eur_only", "SEPA Direct Debit collects in EUR only"))
    errors += _identifier("invoice_number", invoice.invoice_number, INVOICE_NUMBER_MAX, "twinfield_length")
    errors += _identifier("customer_number", invoice.customer_number, CUSTOMER_NUMBER_MAX, "twikey_length")
    if invoice.description is not None:
        errors += _text("description", invoice.description, MESSAGE_MAX)
    elif not any(e.field == "invoice_number" for e in errors):
        bad = first_bad_character(invoice.invoice_number)
        if bad is not None:  # the statement will say "Invoice <number>"
            errors.append(_bad_character("invoice_number", bad))
    if invoice.customer_name is not None:
        errors += _name(invoice.customer_name)
    if invoice.subscription_reference is not None and not invoice.subscription_reference.isprintable():
        errors.append(
            FieldError("subscription_reference", "printable", "subscription_reference has a control character")
        )
    if invoice.customer_email is not None:
        if not invoice.customer_email.isprintable():
            errors.append(FieldError("customer_email", "printable", "customer_email has a control character"))
        elif len(invoice.customer_email) > EMAIL_MAX:
            errors.append(_too_long("customer_email", EMAIL_MAX, "twikey_length"))
        elif not _EMAIL.match(invoice.customer_email):
            errors.append(FieldError("customer_email", "email_format", "not a valid e-mail address"))
    return errors + _dates(invoice, today)


def _too_long(name: str, limit: int, rule: str) -> FieldError:
    return FieldError(name, rule, f"{name} is longer than {limit} characters", {"max_length": limit})


def _bad_character(name: str, bad: BadCharacter) -> FieldError:
    details = {"position": bad.position, "character": bad.character, "code_point": bad.code_point}
    return FieldError(name, "sepa_characters", f"{name}: {bad.describe()}", details)


def _identifier(name: str, value: str, limit: int, length_rule: str) -> list[FieldError]:
    if not value.strip():
        return [FieldError(name, "not_blank", f"{name} must not be blank")]
    if not value.isprintable():
        return [FieldError(name, "printable", f"{name} has a control character")]
    if len(value) > limit:
        return [_too_long(name, limit, length_rule)]
    return []


def _text(name: str, value: str, limit: int) -> list[FieldError]:
    errors = [_too_long(name, limit, "twikey_length")] if len(value) > limit else []
    bad = first_bad_character(value)
    if bad is not None:
        errors.append(_bad_character(name, bad))
    return errors


def _name(name: str) -> list[FieldError]:
    """The pay link splits the name at its first space into Twikey's first and last name."""
    first, _, last = name.partition(" ")
    too_long = max(len(first), len(last)) > NAME_PART_MAX
    errors = [_too_long("customer_name", NAME_PART_MAX, "twikey_length")] if too_long else []
    bad = first_bad_character(name)
    if bad is not None:
        errors.append(_bad_character("customer_name", bad))
    return errors


def _dates(invoice: InvoiceInput, today: date) -> list[FieldError]:
    errors: list[FieldError] = []
    if invoice.invoice_date < today - MAX_INVOICE_AGE:
        errors.append(
            FieldError("invoice_date", "not_too_old", f"invoice_date is more than {MAX_INVOICE_AGE.days} days ago")
        )
    elif invoice.invoice_date > today + MAX_INVOICE_AHEAD:
        errors.append(
            FieldError(
                "invoice_date", "not_too_far_ahead", f"invoice_date is more than {MAX_INVOICE_AHEAD.days} days ahead"
            )
        )
    if invoice.due_date < invoice.invoice_date:
        errors.append(FieldError("due_date", "not_before_invoice_date", "due_date is before invoice_date"))
    elif invoice.due_date - invoice.invoice_date > MAX_PAYMENT_TERM:
        errors.append(
            FieldError(
                "due_date", "payment_term", f"due_date is more than {MAX_PAYMENT_TERM.days} days after invoice_date"
            )
        )
    return errors


def fingerprint(invoice: InvoiceInput) -> str:
    """A stable hash of everything the ERP sent: equal postings are the same invoice."""
    raw = json.dumps(asdict(invoice), sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def differences(a: InvoiceInput, b: InvoiceInput) -> list[str]:
    """Fields in which two postings of one invoice number differ."""
    left, right = asdict(a), asdict(b)
    return sorted(k for k in left if left[k] != right[k])
