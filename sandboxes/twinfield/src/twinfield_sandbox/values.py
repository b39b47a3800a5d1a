"""Wire formats of values: amounts (`435.55`), dates (`YYYYMMDD`), periods (`YYYY/PP`), IBANs."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

_AMOUNT = re.compile(r"^-?\d+(\.\d{1,2})?$")
_PERIOD = re.compile(r"^(\d{4})/(\d{2})$")


def parse_cents(text: str | None) -> int | None:
    """`121.00` -> 12100; None for anything that is not a plain decimal with at most 2 places."""
    if text is None:
        return None
    text = text.strip()
    if not _AMOUNT.match(text):
        return None
    try:
        return int((Decimal(text) * 100).to_integral_value())
    except InvalidOperation:
        return None


def cents_of(value: object) -> int:
    """Control-API amounts may be numbers or strings; floats go through str() so 0.1 stays 0.10."""
    return int((Decimal(str(value)) * 100).to_integral_value())


def fmt_cents(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def parse_date(text: str | None) -> datetime | None:
    if not text or not re.fullmatch(r"\d{8}", text.strip()):
        return None
    try:
        return datetime.strptime(text.strip(), "%Y%m%d")
    except ValueError:
        return None


def parse_period(text: str | None) -> tuple[int, int] | None:
    match = _PERIOD.match((text or "").strip())
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def add_days(yyyymmdd: str, days: int) -> str:
    return (datetime.strptime(yyyymmdd, "%Y%m%d") + timedelta(days=days)).strftime("%Y%m%d")


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y%m%d%H%M%S")


def dutch_date(yyyymmdd: str) -> str:
    """The localized label Twinfield puts in `name` on date cells, e.g. 14/03/2025."""
    return f"{yyyymmdd[6:8]}/{yyyymmdd[4:6]}/{yyyymmdd[:4]}" if len(yyyymmdd) == 8 else ""


def iban_is_valid(iban: str) -> bool:
    iban = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", iban):
        return False
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1
