"""Amounts as Twikey takes them: euros with at most two decimals, above zero and at most SEPA's
largest amount; anything else is ``err_invalid_amount`` naming the field."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import ApiError

# SEPA's largest amount in a pain.008 (ActiveOrHistoricCurrencyAndAmount, EPC rulebook).
MAX_AMOUNT = Decimal("999999999.99")


def parse_amount(raw: Any, name: str = "amount") -> Decimal:
    try:
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise ApiError("err_invalid_amount", extra=name) from None
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")) or value > MAX_AMOUNT:
        raise ApiError("err_invalid_amount", extra=name)
    return value.quantize(Decimal("0.01"))
