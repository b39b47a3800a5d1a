"""Twinfield's messages classified into what an operator can act on, each with a hint.

Twinfield answers in the user's language (Dutch here); the patterns match the Dutch and the
English wording where known.
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

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"periode|period", re.I), "period_closed"),
    (re.compile(r"boekjaar|financial year", re.I), "period_closed"),
    (re.compile(r"debiteur|customer|dimensie \S+ bestaat niet.*dim2", re.I), "unknown_customer"),
    (re.compile(r"niet beschikbaar voor afletteren|status matched|already matched", re.I), "already_matched"),
    (re.compile(r"dagboek|grootboek|dimensie|dimension|rekening", re.I), "unknown_account"),
]


def classify(message: str, node: str | None = None) -> Classified:
    """Classify a Twinfield business error; ``node`` is the element that carried it."""
    if node == "dim2":
        return HINTS["unknown_customer"]
    if node in ("period", "date") and re.search(r"periode|period", message, re.I):
        return HINTS["period_closed"]
    for pattern, code in _PATTERNS:
        if pattern.search(message):
            return HINTS[code]
    return HINTS["validation"]


def hint_for(code: str) -> str:
    return HINTS.get(code, HINTS["validation"]).hint
