"""Preconditions of preparing a mandate, checked before anything is stored or sent to Twikey.

Each broken rule is a ``Violation`` naming the field (as the ERP sent it, e.g. ``customer.iban``)
and a stable rule code, so an ERP can map it to its own form. Valid values come back normalised
(IBAN compact and upper case, BIC upper case, mobile in E.164), which is what Twikey wants.

schwifty and phonenumbers are pure libraries (no I/O): they belong here, next to the rules.

An IBAN and a BIC given together must belong together: the BIC's country is the IBAN's, or the
country whose banks hold that IBAN country's accounts (``SERVED_BY``), or schwifty's bank registry
names this BIC's bank for the IBAN's bank code. Otherwise the pair is refused
(``bic_iban_mismatch``) before Twikey is asked to collect on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import phonenumbers
from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from koppel_shared.debtor import INVITE_DEBTOR_FIELDS, InviteDebtor

LANGUAGES = frozenset({"en", "fr", "nl", "de", "pt", "es", "it"})
SCHEMES = frozenset({"CORE", "B2B"})
DELIVERIES = frozenset({"email", "sms", "link"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# IBAN countries whose accounts are held at banks of another country, whose BICs carry that
# country's code (the SWIFT IBAN registry lists these territories under FR, FI and GB; Monaco's
# accounts are also held at French banks). schwifty has their IBAN formats but not this relation.
SERVED_BY = {
    **dict.fromkeys(("GF", "GP", "MQ", "RE", "YT", "PM", "BL", "MF", "NC", "PF", "WF", "TF", "MC"), "FR"),
    "AX": "FI",
    **dict.fromkeys(("JE", "GG", "IM"), "GB"),
}


@dataclass(frozen=True)
class Violation:
    field: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


@dataclass(frozen=True)
class Customer:
    number: str
    name: str | None = None
    company_name: str | None = None
    email: str | None = None
    mobile: str | None = None
    iban: str | None = None
    bic: str | None = None
    language: str | None = None
    address: str | None = None
    zip: str | None = None
    city: str | None = None
    country: str | None = None

    def as_debtor(self) -> InviteDebtor:
        """The customer as the shared debtor model (``number`` is its customer number)."""
        return InviteDebtor(
            customer_number=self.number,
            **{name: getattr(self, name) for name in INVITE_DEBTOR_FIELDS if name != "customer_number"},
        )


@dataclass(frozen=True)
class MandateRequest:
    customer: Customer
    scheme: str
    delivery: str


class PreconditionFailed(Exception):
    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.message}" for v in violations))
        self.violations = violations


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _clean(value: str | None) -> str | None:
    return None if _blank(value) else value.strip()  # type: ignore[union-attr]


def check_new_mandate(request: MandateRequest) -> MandateRequest:
    """The request with normalised values, or ``PreconditionFailed`` listing every broken rule."""
    c = request.customer
    c = replace(
        c,
        number=c.number.strip(),
        name=_clean(c.name),
        company_name=_clean(c.company_name),
        email=_clean(c.email),
        mobile=_clean(c.mobile),
        iban=_clean(c.iban),
        bic=_clean(c.bic),
        language=_clean(c.language.lower() if c.language else None),
        address=_clean(c.address),
        zip=_clean(c.zip),
        city=_clean(c.city),
        country=_clean(c.country.upper() if c.country else None),
    )
    errors: list[Violation] = []

    if not c.number:
        errors.append(Violation("customer.number", "required", "the customer number is required"))
    if request.scheme not in SCHEMES:
        errors.append(Violation("scheme", "one_of", "scheme must be CORE or B2B"))
    if request.delivery not in DELIVERIES:
        errors.append(Violation("delivery", "one_of", "delivery must be email, sms or link"))
    if c.name is None and c.company_name is None:
        errors.append(Violation("customer.name", "name_or_company_required", "give the debtor's name or company name"))
    if request.scheme == "B2B" and c.company_name is None:
        errors.append(
            Violation(
                "customer.company_name",
                "required_for_b2b",
                "a B2B mandate is only for companies: the company name is required",
            )
        )

    if request.delivery == "email" and c.email is None:
        errors.append(Violation("customer.email", "required_for_email_delivery", "e-mail delivery needs an e-mail"))
    if request.delivery == "sms":
        for field, label in (("mobile", "a mobile number"), ("iban", "an IBAN"), ("bic", "a BIC")):
            if getattr(c, field) is None:
                errors.append(
                    Violation(f"customer.{field}", "required_for_sms_delivery", f"SMS delivery needs {label}")
                )

    if c.email is not None and not _EMAIL.match(c.email):
        errors.append(Violation("customer.email", "email_format", "not a valid e-mail address"))

    iban = c.iban
    parsed: IBAN | None = None
    if iban is not None:
        try:
            parsed = IBAN(iban)
        except SchwiftyException as exc:
            errors.append(Violation("customer.iban", "iban_invalid", f"not a valid IBAN: {exc}"))
        else:
            if not parsed.in_sepa_zone:
                errors.append(
                    Violation("customer.iban", "iban_not_sepa", f"{parsed.country_code} is not in the SEPA zone")
                )
            iban = parsed.compact

    bic = c.bic
    if bic is not None:
        try:
            parsed_bic = BIC(bic)
        except SchwiftyException as exc:
            errors.append(Violation("customer.bic", "bic_invalid", f"not a valid BIC: {exc}"))
        else:
            bic = parsed_bic.compact
            if parsed is not None and not bic_serves_iban(parsed_bic, parsed):
                errors.append(
                    Violation(
                        "customer.bic",
                        "bic_iban_mismatch",
                        f"BIC {bic} is of a bank in {parsed_bic.country_code}, the IBAN of an account in "
                        f"{parsed.country_code}",
                    )
                )

    mobile = c.mobile
    if mobile is not None:
        mobile, problem = normalise_mobile(mobile, c.country)
        if problem:
            errors.append(Violation("customer.mobile", "phone_invalid", problem))

    if c.language is not None and c.language not in LANGUAGES:
        errors.append(
            Violation("customer.language", "language_unsupported", f"language must be one of {sorted(LANGUAGES)}")
        )
    if c.country is not None and not re.fullmatch(r"[A-Z]{2}", c.country):
        errors.append(Violation("customer.country", "country_iso2", "country must be an ISO 3166 alpha-2 code"))

    if errors:
        raise PreconditionFailed(errors)
    return MandateRequest(
        customer=replace(c, iban=iban, bic=bic, mobile=mobile), scheme=request.scheme, delivery=request.delivery
    )


def bic_serves_iban(bic: BIC, iban: IBAN) -> bool:
    if bic.country_code in (iban.country_code, SERVED_BY.get(iban.country_code)):
        return True
    try:
        registered = iban.bic  # the bank schwifty's registry knows for the IBAN's bank code
    except SchwiftyException:
        return False
    return registered is not None and registered.compact[:6] == bic.compact[:6]


def normalise_mobile(raw: str, country: str | None) -> tuple[str | None, str | None]:
    """(E.164 number, None) or (None, why not). A number without ``+`` is read in the debtor's
    country; without a country it must be international."""
    region = country if country and re.fullmatch(r"[A-Z]{2}", country) else None
    try:
        number = phonenumbers.parse(raw, None if raw.startswith("+") else region)
    except phonenumbers.NumberParseException:
        hint = "" if region or raw.startswith("+") else " (use the international format, e.g. +32470123456)"
        return None, f"not a phone number{hint}"
    if not phonenumbers.is_valid_number(number):
        return None, "not a valid phone number"
    kind = phonenumbers.number_type(number)
    if kind not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        return None, "not a mobile number (SMS needs a mobile)"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None
