"""Twinfield's answers read once: a refused post, match or customer update becomes an error code
an operator can act on (domain/errors.py) and the message to show.

ProcessXml business errors carry no code, only the element they sit on and a text in the user's
language. So the element decides first (``dim2`` = the customer, ``dim1``/the header ``code`` = an
account or daybook); the wording is read only where the element says nothing, with the Dutch and
English variants seen in real answers (reference §3.5). A warning is never an error: a
warning-only answer (e.g. "Datum … valt buiten de opgegeven periode") is ``validation``, not
``period_closed``; a "Configuratiefout in rekening-courant" is ``validation``, not an unknown
account. The first error decides (a warning only when there is no error).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bookkeeping_svc.adapters.twinfield.documents import Message, errors_first, summary
from bookkeeping_svc.domain.errors import HINTS, Classified


@dataclass(frozen=True)
class Refusal:
    """Why Twinfield refused one item: our error code, its hint and Twinfield's own words."""

    code: str
    message: str
    hint: str


# The element of an error -> what it means (the wording is not needed then).
# An error on <period> is a period that takes no posting (a message on <date> is read by its
# wording: the date carries invalid-date messages too).
_NODES = {"dim2": "unknown_customer", "dim1": "unknown_account", "code": "unknown_account", "period": "period_closed"}

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # "De boeking kan niet gemaakt worden omdat periode 2020/01 niet bestaat" (KNLTB); closed/locked
    (
        re.compile(
            r"periode \S+ (bestaat niet|niet bestaat|is (af)?gesloten|is geblokkeerd)"
            r"|period \S+ (does not exist|is closed|is locked)"
            r"|boekjaar \S+ (bestaat niet|is afgesloten)|financial year \S+ (does not exist|is closed)",
            re.I,
        ),
        "period_closed",
    ),
    # "Boeking VRK 202100008 regel 2 is niet beschikbaar voor afletteren." (murb/twinfield spec)
    (re.compile(r"niet beschikbaar voor afletteren|not available for matching", re.I), "already_matched"),
    (re.compile(r"debiteur \S+ (bestaat niet|komt niet voor)|customer \S+ does not exist", re.I), "unknown_customer"),
    (
        re.compile(
            r"(dagboek|grootboekrekening|transactietype) \S+ (bestaat niet|komt niet voor)"
            r"|(daybook|transaction type|general ledger account) \S+ does not exist",
            re.I,
        ),
        "unknown_account",
    ),
]


def classify(message: str, node: str | None = None, kind: str = "error") -> Classified:
    """Classify a Twinfield message; ``node`` is the element that carried it, ``kind`` its
    ``msgtype``."""
    if kind != "error":
        return HINTS["validation"]
    if node in _NODES:
        return HINTS[_NODES[node]]
    for pattern, code in _PATTERNS:
        if pattern.search(message):
            return HINTS[code]
    return HINTS["validation"]


def classify_messages(msgs: list[Message]) -> Classified:
    """The first error decides (a warning only when there is no error)."""
    first = next(iter(errors_first(msgs)), None)
    return classify(first.text, first.node, first.kind) if first else HINTS["validation"]


def customer_update_error(msgs: list[Message]) -> Classified:
    """A refused customer update: an error on the dimension's ``code`` ("Dimensie 1001 bestaat
    niet." / "Dimension 1001 does not exist.") or a demand for a ``name`` (Twinfield would create
    the customer) means the customer is not there; anything else is read like any message."""
    errors = [m for m in msgs if m.kind == "error"]
    if any(m.node in ("code", "name") for m in errors):
        return HINTS["unknown_customer"]
    # Where the element says nothing (the message on the whole dimension), the wording decides.
    if any(_MISSING_CUSTOMER.search(m.text) for m in errors):
        return HINTS["unknown_customer"]
    return classify_messages(msgs)


_MISSING_CUSTOMER = re.compile(r"naam is verplicht|name is (required|mandatory)|bestaat niet|does not exist", re.I)


def refusal(msgs: list[Message]) -> Refusal:
    """A refused transaction or match set."""
    classified = classify_messages(msgs)
    return Refusal(classified.code, summary(msgs), classified.hint)


def customer_refusal(msgs: list[Message]) -> Refusal:
    """A refused customer (bank account and collect mandate) update."""
    classified = customer_update_error(msgs)
    return Refusal(classified.code, summary(msgs), classified.hint)
