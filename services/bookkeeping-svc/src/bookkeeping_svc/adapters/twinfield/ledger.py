"""Reading Twinfield's side for reconciliation: browse 100 (customer transactions) with only the
fields, labels and operators of Twinfield's own browse-100 definition that real answers carry
(documents.LOOKUP_COLUMNS, plus ``fin.trs.line.matchnumber``: wp-twinfield/twinfield
tests/xml/Transactions/browse-100-match-status-available.xml), read strictly.

Browse 100 has no description column (no real definition or answer shows one), so a MEMO line
is Koppel's by its transaction number, which the booking keeps; only MEMO payment lines no
booking claims are read in full (``<read><type>transaction``), whose real answers carry the
line descriptions (php-twinfield/twinfield tests/IntegrationTests/resources/
journalTransactionGetResponse.xml).

A browse answer is not paged, so requests are kept small by what they ask for: the MEMO daybook
one period at a time (Twinfield's own advice is to browse a year at a time at most; integrators
report that ``fin.trs.head.date`` takes no operator, so the period is the window), and the sales
lines bookings were matched to by ranges of transaction numbers of one daybook.
"""

from __future__ import annotations

from lxml import etree

from bookkeeping_svc.adapters.twinfield.documents import LOOKUP_COLUMNS, browse_columns, browse_rows
from bookkeeping_svc.domain.booking import parse_amount
from bookkeeping_svc.domain.reconcile import LedgerLine

COLUMNS = (*LOOKUP_COLUMNS, ("fin.trs.line.matchnumber", "Betaalnr."))
FIELDS = tuple(name for name, _ in COLUMNS)
# Provisional and final, as the definition's default filter on the status.
NORMAL = ("equal", "normal", None)


def period_lines(daybook: str, period: str) -> str:
    """The customer lines of one daybook in one period (``YYYY/MM``)."""
    return browse_columns(
        "100",
        COLUMNS,
        {
            "fin.trs.head.yearperiod": ("between", period, period),
            "fin.trs.head.code": ("equal", daybook, None),
            "fin.trs.head.status": NORMAL,
        },
    )


def numbered_lines(daybook: str, low: int, high: int) -> str:
    """The customer lines of the transactions ``low``..``high`` of one daybook."""
    return browse_columns(
        "100",
        COLUMNS,
        {
            "fin.trs.head.code": ("equal", daybook, None),
            "fin.trs.head.number": ("between", str(low), str(high)),
            "fin.trs.head.status": NORMAL,
        },
    )


def parse(root: etree._Element) -> list[LedgerLine]:
    """The rows of a browse-100 answer; a requested column missing raises ``BrowseShapeError``."""
    return [
        LedgerLine(
            daybook=row.daybook,
            number=row.number,
            line=row.line,
            period=row.cells["fin.trs.head.yearperiod"],
            customer=row.cells["fin.trs.line.dim2"],
            invoice_number=row.cells["fin.trs.line.invnumber"],
            value_cents=parse_amount(row.cells["fin.trs.line.basevaluesigned"]),
            matchstatus=row.cells["fin.trs.line.matchstatus"],
            matchnumber=row.cells["fin.trs.line.matchnumber"],
        )
        for row in browse_rows(root, FIELDS)
    ]
