"""SEPA Direct Debit reason codes ("R-codes") a bank returns for a failed or reversed collection,
with their meaning and whether collecting again can ever help.

``retry_never`` marks codes where a new attempt would collect against the debtor's will or on a
mandate that is not valid (MD01 no mandate, MD06 refund requested, MS02 refused by the debtor, AC04
closed account, ...): those are never retried, whatever a tenant configures.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RCode:
    code: str
    meaning: str
    category: str  # funds|account|mandate|debtor|bank|other
    retry_never: bool


_TABLE: tuple[RCode, ...] = (
    RCode("AC01", "Incorrect account number (IBAN invalid)", "account", True),
    RCode("AC04", "Account closed", "account", True),
    RCode("AC06", "Account blocked for direct debit by the debtor or the bank", "account", True),
    RCode("AC13", "Debtor account is a consumer account (not allowed for B2B)", "account", True),
    RCode("AG01", "Direct debit forbidden on this account (e.g. savings account)", "account", True),
    RCode("AG02", "Operation or transaction code not valid", "bank", True),
    RCode("AM04", "Insufficient funds", "funds", False),
    RCode("AM05", "Duplicate collection", "bank", True),
    RCode("BE05", "Creditor identifier incorrect", "bank", True),
    RCode("CNOR", "Creditor bank is not registered under this BIC in the CSM", "bank", False),
    RCode("DNOR", "Debtor bank is not registered under this BIC in the CSM", "bank", False),
    RCode("FF01", "Invalid file format", "bank", False),
    RCode("MD01", "No valid mandate (no mandate, or mandate revoked)", "mandate", True),
    RCode("MD02", "Mandate data missing or incorrect", "mandate", True),
    RCode("MD06", "Refund requested by the debtor (disputed authorised collection)", "debtor", True),
    RCode("MD07", "Debtor deceased", "debtor", True),
    RCode("MS02", "Refused by the debtor (reason not specified by the customer)", "debtor", True),
    RCode("MS03", "Reason not specified by the bank", "other", False),
    RCode("PY01", "Unknown BIC / not routable", "bank", False),
    RCode("RC01", "BIC incorrect", "account", True),
    RCode("RR01", "Missing debtor account or identification (regulatory)", "account", True),
    RCode("RR02", "Missing debtor name or address (regulatory)", "debtor", True),
    RCode("RR03", "Missing creditor name or address (regulatory)", "bank", True),
    RCode("RR04", "Regulatory reason", "bank", True),
    RCode("SL01", "Specific service offered by the debtor bank (e.g. creditor blocked)", "bank", True),
)

R_CODES: dict[str, RCode] = {r.code: r for r in _TABLE}


def lookup(code: str | None) -> RCode | None:
    if not code:
        return None
    return R_CODES.get(code.strip().upper())


def meaning(code: str | None) -> str | None:
    """Human meaning of an R-code; unknown codes are named as such rather than dropped."""
    if not code:
        return None
    found = lookup(code)
    return found.meaning if found else f"Unknown bank reason code {code}"


def never_retry(code: str | None) -> bool:
    found = lookup(code)
    return found.retry_never if found else False
