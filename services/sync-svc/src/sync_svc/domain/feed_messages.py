"""Turning Twikey feed items into Koppel events (pure; shapes in reference §3, §5.2, §8).

Each item gets a stable identity (``twikey_event_id``: feed name + Twikey's sequence number), from
which the envelope id is derived, so reading an item twice yields the same event. An item that
cannot be understood raises ``BadMessage`` with the reason; optional fields that are malformed are
dropped (``None``) rather than losing the whole message.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from koppel_shared.debtor import Debtor
from koppel_shared.events.twikey import (
    TwikeyMandateChanged,
    TwikeyPaylinkChanged,
    TwikeyTransactionChanged,
)
from sync_svc.domain.money import BadAmount, to_cents

Item = dict[str, Any]

# Sandbox convention for suspend/resume amendments (README "Suspend/resume in the feed").
SUSPEND_REASONS = {"suspended": True, "resumed": False}
FAILED_STATES = {"ERROR", "UNPAID"}


class BadMessage(ValueError):
    """A feed item we cannot turn into an event; ``seq`` when it is known."""

    def __init__(self, reason: str, seq: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.seq = seq


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_time(value: Any) -> datetime | None:
    text = _str(value)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _date(value: Any) -> date | None:
    parsed = parse_time(value)
    if parsed is not None:
        return parsed.date()
    text = _str(value)
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _cents(value: Any) -> int | None:
    try:
        return to_cents(value)
    except BadAmount:
        return None


def _supplementary(mndt: dict[str, Any]) -> dict[str, Any]:
    data = mndt.get("SplmtryData")
    if not isinstance(data, list):
        return {}
    return {str(kv.get("Key")): kv.get("Value") for kv in data if isinstance(kv, dict) and "Key" in kv}


def _from_date(mndt: dict[str, Any]) -> date | None:
    return _date(_dict(_dict(mndt.get("Ocrncs")).get("Drtn")).get("FrDt"))


def _debtor(mndt: dict[str, Any], extra: dict[str, Any]) -> Debtor | None:
    dbtr = _dict(mndt.get("Dbtr"))
    if not dbtr:
        return None
    contact = _dict(dbtr.get("CtctDtls"))
    address = _dict(dbtr.get("PstlAdr"))
    name = _str(dbtr.get("Nm"))
    # Twikey gives a company debtor an enterprise number (Dbtr.Id); a person has none.
    is_company = _str(dbtr.get("Id")) is not None
    person = " ".join(p for p in (_str(extra.get("FirstName")), _str(extra.get("LastName"))) if p)
    return Debtor(
        name=(person or None) if is_company else name,
        company_name=name if is_company else None,
        email=_str(contact.get("EmailAdr")),
        mobile=_str(contact.get("MobNb")),
        customer_number=_str(contact.get("Othr")),
        address=_str(address.get("AdrLine")),
        zip=_str(address.get("PstCd")),
        city=_str(address.get("TwnNm")),
        country=_str(address.get("Ctry")),
        language=_str(extra.get("Language")),
    )


def mandate_changed(item: Item) -> TwikeyMandateChanged:
    seq = _int(item.get("EvtId"))
    if seq is None:
        raise BadMessage("mandate message without a numeric EvtId")
    mndt = _dict(item.get("Mndt"))
    number = _str(mndt.get("MndtId")) or _str(item.get("OrgnlMndtId"))
    if not number:
        raise BadMessage("mandate message without MndtId/OrgnlMndtId", seq)
    amendment, cancellation = item.get("AmdmntRsn"), item.get("CxlRsn")
    if cancellation is not None:
        change, reason_block = "cancelled", _dict(cancellation)
    elif amendment is not None:
        change, reason_block = "updated", _dict(amendment)
    else:
        change, reason_block = "signed", {}
    if not mndt and change != "cancelled":
        raise BadMessage(f"{change} mandate message without Mndt", seq)
    reason = _str(reason_block.get("Rsn"))
    suspended = SUSPEND_REASONS.get((reason or "").lower()) if change == "updated" else None
    state = {"signed": "SIGNED", "cancelled": "CANCELLED"}.get(change)
    if suspended is not None:
        state = "SUSPENDED" if suspended else "SIGNED"
    extra = _supplementary(mndt)
    scheme = _str(mndt.get("LclInstrm"))
    max_amount = _cents(mndt.get("MaxAmt"))
    return TwikeyMandateChanged(
        twikey_event_id=f"mandate/{seq}",
        feed_seq=seq,
        event_time=parse_time(item.get("EvtTime")) or datetime.now(UTC),
        mandate_number=number,
        change=change,
        scheme=scheme if scheme in ("CORE", "B2B") else None,
        state=state,
        suspended=suspended,
        iban=_str(mndt.get("DbtrAcct")),
        bic=_str(_dict(_dict(mndt.get("DbtrAgt")).get("FinInstnId")).get("BICFI")),
        debtor=_debtor(mndt, extra),
        # Passed on as is: 0 is Twikey's "no maximum", None means the message did not say.
        max_amount_cents=max_amount,
        signature_date=_date(extra.get("SignerDate#0")) or (_from_date(mndt) if change == "signed" else None),
        sign_method=_str(extra.get("SignerMethod#0")),
        sign_place=_str(extra.get("SignerPlace#0")),
        signer=_str(extra.get("Signer#0")),
        reason=reason,
        template_id=_str(extra.get("TemplateId")),
        contract_number=_str(mndt.get("RfrdDoc")),
    )


def transaction_event_id(item: Item) -> tuple[str, int | None]:
    """Twikey's identity of a transaction-feed entry: its ``seq`` (we ask ``include=seq``); without
    one, the entry's content (id + state + bank date + last update) stands in."""
    seq = _int(item.get("seq"))
    if seq is not None:
        return f"transaction/{seq}", seq
    tx = _str(item.get("id"))
    if tx is None:
        raise BadMessage("transaction entry without id or seq")
    parts = [tx, _str(item.get("state")) or "", _str(item.get("bkdate")) or "", _str(item.get("lastupdate")) or ""]
    return "transaction/" + "/".join(parts), None


def transaction_changed(item: Item, paid_seq: int | None) -> TwikeyTransactionChanged:
    """``paid_seq``: the feed seq at which this transaction was first seen PAID (None: never) —
    an ERROR/UNPAID entry after that is a reversal."""
    event_id, seq = transaction_event_id(item)
    tx = _str(item.get("id"))
    if tx is None:
        raise BadMessage("transaction entry without id", seq)
    state = _str(item.get("state"))
    if state is None:
        raise BadMessage("transaction entry without state", seq)
    amount = _cents(item.get("amount"))
    if amount is None:
        raise BadMessage(f"transaction entry with a bad amount {item.get('amount')!r}", seq)
    state = state.upper()
    raw_actions = item.get("actions")
    actions: list[Any] = raw_actions if isinstance(raw_actions, list) else []
    said_reversal = bool(actions) and _dict(actions[-1]).get("type") == "reversal"
    after_paid = paid_seq is not None and (seq is None or paid_seq < seq)
    return TwikeyTransactionChanged(
        twikey_event_id=event_id,
        feed_seq=seq or 0,
        transaction_id=tx,
        reference=_str(item.get("ref")),
        mandate_number=_str(item.get("mndtId")),
        amount_cents=amount,
        state=state,
        final=item.get("final") is True,
        reversal=state in FAILED_STATES and (after_paid or said_reversal),
        bank_error=_str(item.get("bkerror")),
        bank_message=_str(item.get("bkmsg")),
        booked_at=parse_time(item.get("bkdate")),
        message=_str(item.get("msg")),
    )


def paylink_changed(item: Item) -> TwikeyPaylinkChanged:
    seq = _int(item.get("seq"))
    link = _str(item.get("id"))
    if seq is None:
        raise BadMessage("pay-link item without seq")
    if link is None:
        raise BadMessage("pay-link item without id", seq)
    state = _str(item.get("state"))
    if state is None:
        raise BadMessage("pay-link item without state", seq)
    return TwikeyPaylinkChanged(
        twikey_event_id=f"paylink/{seq}",
        feed_seq=seq,
        paylink_id=link,
        reference=_str(item.get("ref")),
        state=state.lower(),
        amount_cents=_cents(item.get("amount")),
        mandate_number=_str(_dict(item.get("meta")).get("sdd")),
    )
