"""Reading Twinfield's side for reconciliation: browse 100 (customer transactions) with fields
and operators real Twinfield has (reference §5.1: ``equal`` and ``between`` on
``fin.trs.head.code``, ``fin.trs.head.yearperiod``, ``fin.trs.head.number``; every requested
column visible).

A browse answer is not paged, so requests are kept small by what they ask for: the MEMO daybook
one period at a time (Twinfield's own advice is to browse a year at a time at most; integrators
report that ``fin.trs.head.date`` takes no operator, so the period is the window), and the sales
lines bookings were matched to by ranges of transaction numbers of one daybook.
"""

from __future__ import annotations

from lxml import etree

from bookkeeping_svc.adapters.twinfield.documents import _string, _sub
from bookkeeping_svc.domain.booking import parse_amount
from bookkeeping_svc.domain.reconcile import LedgerLine

# fin.trs.head.office is not in the real browse-100 definition (murb/twinfield
# lib/twinfield/browse/transaction/customer.rb): the office is the SOAP header's CompanyCode.
# fin.trs.line.description is not in it either; reconciliation still reads it (UNCONFIRMED for
# browse 100, reference §5.1).
FIELDS = (
    "fin.trs.head.yearperiod",
    "fin.trs.head.code",
    "fin.trs.head.number",
    "fin.trs.line.dim2",
    "fin.trs.line.invnumber",
    "fin.trs.line.valuesigned",
    "fin.trs.line.matchstatus",
    "fin.trs.line.matchnumber",
    "fin.trs.line.description",
)


def _browse(office: str, filters: dict[str, tuple[str, str, str | None]]) -> str:
    root = etree.Element("columns", code="100")
    for name in FIELDS:
        col = _sub(root, "column")
        _sub(col, "field", name)
        _sub(col, "visible", "true")
        if name in filters:
            operator, low, high = filters[name]
            _sub(col, "ask", "true")
            _sub(col, "operator", operator)
            _sub(col, "from", low)
            if high is not None:
                _sub(col, "to", high)
    return _string(root)


def period_lines(office: str, daybook: str, period: str) -> str:
    """The customer lines of one daybook in one period (``YYYY/MM``)."""
    return _browse(
        office,
        {
            "fin.trs.head.code": ("equal", daybook, None),
            "fin.trs.head.yearperiod": ("between", period, period),
        },
    )


def numbered_lines(office: str, daybook: str, low: int, high: int) -> str:
    """The customer lines of the transactions ``low``..``high`` of one daybook."""
    return _browse(
        office,
        {
            "fin.trs.head.code": ("equal", daybook, None),
            "fin.trs.head.number": ("between", str(low), str(high)),
        },
    )


def parse(root: etree._Element) -> list[LedgerLine]:
    lines = []
    for tr in root.iter("tr"):
        key = tr.find("key")
        if key is None:
            continue
        cells = {td.get("field"): (td.text or "").strip() for td in tr.iter("td")}
        lines.append(
            LedgerLine(
                daybook=(key.findtext("code") or "").strip(),
                number=(key.findtext("number") or "").strip(),
                line=int((key.findtext("line") or "0").strip() or 0),
                period=cells.get("fin.trs.head.yearperiod", ""),
                customer=cells.get("fin.trs.line.dim2", ""),
                invoice_number=cells.get("fin.trs.line.invnumber", ""),
                value_cents=parse_amount(cells.get("fin.trs.line.valuesigned") or "0"),
                matchstatus=cells.get("fin.trs.line.matchstatus", ""),
                matchnumber=cells.get("fin.trs.line.matchnumber", ""),
                description=cells.get("fin.trs.line.description", ""),
            )
        )
    return lines
