"""Payment identity: what a paid item is at Twikey, and when a second announcement of it is a
harmless duplicate or a conflict for an operator.

Twikey numbers transactions (direct debits) and pay links in separate sequences, so their ids
overlap: a paid item is (tenant, kind, Twikey id), never the id alone. The same kind+id (or the
same collection) announced again is a duplicate only when kind, id, amount and invoice all agree;
anything else is a conflict, which must reach an operator with both records.

Our reference in Twinfield (the optional header free-text field; the MEMO description
"<reference> betaling" of MEMOs posted before the invoice-number convention, domain/booking.py)
is kind-qualified for the same reason: ``TX<id>`` for a transaction, ``PL<id>`` for a pay link.
References written before kinds existed are the bare id; bookings keep the reference they were
posted with, so those MEMOs are still found.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

TRANSACTION = "transaction"
PAYLINK = "paylink"
KINDS = (TRANSACTION, PAYLINK)
PREFIX = {TRANSACTION: "TX", PAYLINK: "PL"}
CONFLICT_CODE = "payment_conflict"
CONFLICT_HINT = (
    "Dezelfde betaling (soort en Twikey-nummer, of dezelfde incasso) is opnieuw gemeld met een ander bedrag, "
    "een andere factuur of een ander Twikey-nummer; de tweede melding is niet geboekt. Vergelijk beide regels "
    "met Twikey: is het een echte tweede betaling, boek haar dan; anders negeer haar met een notitie."
)


def payment_kind(method: str, kind: str | None = None) -> str:
    """The kind of a paid item; announcements from before kinds existed carry only the method."""
    if kind in KINDS:
        return kind
    return PAYLINK if method == PAYLINK else TRANSACTION


def payment_reference(kind: str, twikey_id: str | None, collection_id: str) -> str:
    """Our reference in Twinfield: kind-qualified Twikey id, else the collection id (a uuid)."""
    if twikey_id:
        return f"{PREFIX[kind]}{twikey_id}"
    return collection_id


def conflict_reference(conflict_id_hex: str, reference: str) -> str:
    """The reference of a payment an operator books out of a conflict: unique in its first
    characters (descriptions keep the first 40), the original reference after it."""
    return f"CF{conflict_id_hex[:10]}-{reference}"


@dataclass(frozen=True)
class PaidItem:
    """The facts that make a paid item what it is."""

    collection_id: str
    kind: str
    twikey_id: str | None
    amount_cents: int
    invoice_number: str
    invoice_id: str | None = None


class Verdict(StrEnum):
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Comparison:
    verdict: Verdict
    differences: tuple[str, ...]  # payment | amount | invoice, in that order


def _differ(a: str | None, b: str | None) -> bool:
    """Two facts differ only when both are known: an id not yet known is not another id."""
    return a is not None and b is not None and a != b


def compare(existing: PaidItem, incoming: PaidItem) -> Comparison:
    """A second announcement of a paid item we have (same collection, or same kind and id)."""
    differences: list[str] = []
    if existing.kind != incoming.kind or _differ(existing.twikey_id, incoming.twikey_id):
        differences.append("payment")
    if existing.amount_cents != incoming.amount_cents:
        differences.append("amount")
    if existing.invoice_number.strip() != incoming.invoice_number.strip() or _differ(
        existing.invoice_id, incoming.invoice_id
    ):
        differences.append("invoice")
    return Comparison(Verdict.CONFLICT if differences else Verdict.DUPLICATE, tuple(differences))
