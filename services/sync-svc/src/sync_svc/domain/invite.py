"""What an invite asks of Twikey (reference §2.1): the template of the scheme, the debtor's data,
and whether Twikey sends the invitation itself.

Delivery: ``email`` → ``sendInvite=true`` (Twikey e-mails the debtor). ``sms`` and ``link`` →
Twikey sends nothing (``/invite`` has no SMS option; ``sendInvite`` is a boolean that means
e-mail); the caller hands the sign URL to the debtor — by SMS through its own channel, or as a link.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from koppel_shared.debtor import Debtor, InviteDebtor


@dataclass(frozen=True)
class InviteRequest:
    reference: str
    scheme: Literal["CORE", "B2B"]
    delivery: Literal["email", "sms", "link"]
    # Chosen by the caller (Twikey's ``mandateNumber``): the look-up key when an invite's outcome
    # is unknown. Without it Twikey numbers the mandate and a lost answer cannot be looked up.
    mandate_number: str | None = None
    debtor: InviteDebtor = field(default_factory=InviteDebtor)
    # What Twikey's invite form takes beside the debtor: the name in parts (an ERP may give them
    # instead of ``debtor.name``) and the VAT number.
    first_name: str | None = None
    last_name: str | None = None
    vat_number: str | None = None


def twikey_debtor_params(debtor: Debtor) -> dict[str, str | None]:
    """The debtor's fields under the names Twikey's forms give them — one mapping for the invite
    and the pay link (``POST /payment/link``); each form splits the name its own way."""
    return {
        "l": debtor.language,
        "email": debtor.email,
        "companyName": debtor.company_name,
        "mobile": debtor.mobile,
        "customerNumber": debtor.customer_number,
        "address": debtor.address,
        "zip": debtor.zip,
        "city": debtor.city,
        "country": debtor.country,
    }


def split_name(request: InviteRequest) -> tuple[str | None, str | None]:
    """Twikey wants first and last name apart; a single ``name`` is split at its first space."""
    if request.first_name or request.last_name:
        return request.first_name, request.last_name
    if not request.debtor.name:
        return None, None
    first, _, last = request.debtor.name.strip().partition(" ")
    return (first, last) if last else (None, first)


def invite_form(request: InviteRequest, template_id: str) -> dict[str, str]:
    first, last = split_name(request)
    fields: dict[str, str | None] = {
        "ct": template_id,
        "mandateNumber": request.mandate_number,
        **twikey_debtor_params(request.debtor),
        "firstname": first,
        "lastname": last,
        "vatno": request.vat_number,
        "iban": request.debtor.iban,
        "bic": request.debtor.bic,
        # Echoed back in the exit URL: our mandate id travels with the debtor.
        "token": request.reference,
        "sendInvite": "true" if request.delivery == "email" else None,
    }
    return {k: v for k, v in fields.items() if v}
