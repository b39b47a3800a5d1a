"""Twinfield's messages classified into what an operator can act on, each with a hint.

ProcessXml business errors carry no code, only the element they sit on and a text in the user's
language. So the element decides first (``dim2`` = the customer, ``dim1``/the header ``code`` = an
account or daybook); the wording is read only where the element says nothing, with the Dutch and
English variants seen in real answers (reference §3.5). A warning is never an error: a
warning-only answer (e.g. "Datum … valt buiten de opgegeven periode") is ``validation``, not
``period_closed``; a "Configuratiefout in rekening-courant" is ``validation``, not an unknown
account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Classified:
    code: str
    hint: str
    transient: bool = False  # retried by itself with backoff; lands on the errors list only later


HINTS: dict[str, Classified] = {
    "period_closed": Classified(
        "period_closed",
        "De periode van de boekdatum bestaat niet of is gesloten in Twinfield. Open het boekjaar/de periode "
        "in Twinfield en probeer opnieuw.",
    ),
    "unknown_customer": Classified(
        "unknown_customer",
        "De debiteur bestaat niet in deze administratie. Leg de debiteur aan in Twinfield (of corrigeer het "
        "debiteurnummer) en probeer opnieuw.",
    ),
    "unknown_account": Classified(
        "unknown_account",
        "Een grootboekrekening of dagboek bestaat niet. Controleer de tussenrekening en debiteurenrekening in "
        "de Twinfield-koppeling.",
    ),
    "invoice_not_found": Classified(
        "invoice_not_found",
        "De verkoopfactuur staat niet (open) in Twinfield. Boek de factuur in Twinfield en probeer opnieuw.",
    ),
    "amount_mismatch": Classified(
        "amount_mismatch",
        "Het openstaande bedrag wijkt af van de betaling. Controleer de factuur in Twinfield (creditnota, "
        "deelbetaling) en probeer opnieuw of letter handmatig af.",
    ),
    "ambiguous_invoice": Classified(
        "ambiguous_invoice",
        "Het factuurnummer is niet eenduidig. Controleer het e-mailadres van de debiteur in Twinfield.",
    ),
    "already_matched": Classified(
        "already_matched",
        "De factuur is al afgeletterd. Controleer in Twinfield of de betaling dubbel is ontvangen.",
    ),
    "invoice_in_payment_run": Classified(
        "invoice_in_payment_run",
        "De factuur staat in een betaal- of incassovoorstel in Twinfield (betaalstatus 'voorgesteld'), dus "
        "nog open maar nu niet af te letteren. Haal haar uit het voorstel en probeer opnieuw.",
    ),
    "auth_lost": Classified(
        "auth_lost",
        "De toegang tot Twinfield is ingetrokken of verlopen. Verbind de administratie opnieuw via "
        "/v1/twinfield/connect; de boekingen gaan daarna vanzelf verder.",
    ),
    "rate_limited": Classified(
        "rate_limited",
        "Twinfield's fair-use-limiet is bereikt; de boeking wordt vanzelf later opnieuw geprobeerd.",
        transient=True,
    ),
    "unavailable": Classified(
        "unavailable",
        "Twinfield was niet bereikbaar of gaf een serverfout; de boeking wordt vanzelf opnieuw geprobeerd.",
        transient=True,
    ),
    "not_configured": Classified(
        "not_configured",
        "De Twinfield-koppeling is niet (volledig) ingesteld: administratie of tussenrekening ontbreekt.",
    ),
    "validation": Classified(
        "validation",
        "Twinfield weigerde de boeking. Lees de melding, corrigeer de gegevens en probeer opnieuw.",
    ),
}

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


def hint_for(code: str) -> str:
    return HINTS.get(code, HINTS["validation"]).hint
