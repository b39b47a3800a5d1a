"""What an operator can act on when a booking fails: each error code with its hint. Twinfield's
messages are turned into these codes in one place, adapters/twinfield/answers.py."""

from __future__ import annotations

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


def hint_for(code: str) -> str:
    return HINTS.get(code, HINTS["validation"]).hint
