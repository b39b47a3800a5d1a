"""Twikey's JSON shapes: the `Mndt` object, transaction entries, pay-link items, timestamps.

Kept apart from the handlers so feeds, detail calls and the control API render identically.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from .state import Creditor, Mandate, Paylink, Transaction


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def money(value: Decimal | None) -> float | None:
    # Twikey sends amounts as JSON numbers (e.g. 10.0); Decimal stays exact inside the sandbox.
    return None if value is None else float(value)


BANK_NAMES = {
    "GKCCBEBB": "BELFIUS BANK",
    "GEBABEBB": "BNP PARIBAS FORTIS",
    "KREDBEBB": "KBC BANK",
    "BBRUBEBB": "ING BELGIE",
    "INGBNL2A": "ING BANK",
    "RABONL2U": "RABOBANK",
    "ABNANL2A": "ABN AMRO BANK",
}


def mandate_json(m: Mandate, creditor: Creditor) -> dict[str, Any]:
    debtor: dict[str, Any] = {
        "Nm": m.debtor_name,
        "PstlAdr": {"AdrLine": m.address, "PstCd": m.zip, "TwnNm": m.city, "Ctry": m.country},
        "CtryOfRes": m.country,
        "CtctDtls": {"EmailAdr": m.email, "MobNb": m.mobile, "Othr": m.customer_number},
    }
    if m.company_name and m.coc:
        debtor["Id"] = m.coc
    supplementary: list[dict[str, Any]] = [
        {"Key": "TemplateId", "Value": m.ct},
        {"Key": "MandateName", "Value": f"{m.scheme} mandate"},
    ]
    if m.sign_date is not None:
        supplementary += [
            {"Key": "SignerMethod#0", "Value": m.sign_method},
            {"Key": "Signer#0", "Value": m.signer or m.debtor_name},
            {"Key": "SignerPlace#0", "Value": m.sign_place},
            {"Key": "SignerDate#0", "Value": iso(m.sign_date)},
        ]
    if m.first_name or m.last_name:
        supplementary += [
            {"Key": "FirstName", "Value": m.first_name},
            {"Key": "LastName", "Value": m.last_name},
        ]
    return {
        "MndtId": m.mndt_id,
        "LclInstrm": m.scheme,
        "Ocrncs": {
            "SeqTp": "RCUR",
            "Frqcy": "ADHO",
            "Drtn": {"FrDt": day(m.sign_date or m.created_at), "ToDt": None},
        },
        "CdtrSchmeId": creditor.scheme_id,
        "Cdtr": {
            "Nm": creditor.name,
            "PstlAdr": {"AdrLine": "Sandboxstraat 1", "PstCd": "1000", "TwnNm": "Brussel", "Ctry": "BE"},
            "Id": "BE0533800797",
            "CtryOfRes": "BE",
            "CtctDtls": {"EmailAdr": creditor.email},
        },
        "Dbtr": debtor,
        "DbtrAcct": m.iban,
        "DbtrAgt": {"FinInstnId": {"BICFI": m.bic, "Nm": BANK_NAMES.get(m.bic, "")}},
        "RfrdDoc": m.contract_number,
        "MaxAmt": format(m.max_amount, "f"),
        "SplmtryData": supplementary,
    }


def transaction_created_json(t: Transaction) -> dict[str, Any]:
    return {
        "id": t.id,
        "contractId": t.contract_id,
        "mndtId": t.mndt_id,
        "contract": t.contract,
        "amount": money(t.amount),
        "msg": t.msg,
        "place": t.place,
        "ref": t.ref,
        "reqcolldt": t.reqcolldt,
        "date": iso(t.date),
    }


def transaction_json(t: Transaction, includes: AbstractSet[str], seq: int | None = None) -> dict[str, Any]:
    entry = transaction_created_json(t)
    entry["state"] = t.state
    entry["final"] = t.final
    if t.bkdate is not None:
        entry["bkdate"] = iso(t.bkdate)
        entry["bkamount"] = money(t.bkamount)
    if t.bkerror:
        entry["bkerror"] = t.bkerror
        entry["bkmsg"] = t.bkmsg
    if "collection" in includes:
        entry["collection"] = t.collection
    if "lastupdate" in includes:
        entry["lastupdate"] = iso(t.lastupdate)
    if "link" in includes:
        entry["link"] = t.link
    if "action" in includes or "action_payment" in includes:
        entry["actions"] = list(t.actions)
    if "seq" in includes and seq is not None:
        entry["seq"] = seq
    return entry


def paylink_json(p: Paylink, includes: AbstractSet[str] = frozenset(), seq: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": p.id,
        "amount": money(p.amount),
        "msg": p.msg,
        "ref": p.ref,
        "state": p.state,
    }
    if p.ct is not None:
        item["ct"] = p.ct
    if seq is not None:
        item["seq"] = seq
    if "customer" in includes:
        item["customer"] = dict(p.customer)
    if "meta" in includes:
        item["meta"] = {"active": p.state in ("created", "started"), "method": p.method, "sdd": p.mndt_id}
    if "time" in includes:
        item["time"] = {
            "creation": iso(p.created_at),
            "expiration": iso(p.expires_at),
            "lastupdate": iso(p.lastupdate),
        }
    return item
