"""Twikey speaks decimal euros (JSON numbers or strings); Koppel speaks integer cents."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation


class BadAmount(ValueError):
    pass


def to_cents(value: object) -> int:
    """``10.0`` / ``"49.99"`` / ``49.99`` → cents. Floats go through ``str`` so 0.1 stays 0.1."""
    if value is None or isinstance(value, bool):
        raise BadAmount(f"not an amount: {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise BadAmount(f"not an amount: {value!r}") from None
    if not amount.is_finite():
        raise BadAmount(f"not an amount: {value!r}")
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def to_euros(cents: int) -> str:
    """cents → the ``"12.34"`` form Twikey's form bodies take."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"
