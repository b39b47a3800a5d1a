"""Browse data (`<columns code="100">`, customer transactions) and its definition
(`<read><type>browse</type><code>100</code>`).

A row is one customer line (a line on a receivables control account with a customer as dim2):
a sales invoice's total line or a payment's customer line. The fields, labels and default
operators are those of Twinfield's own browse-100 definition ("Debiteurenkaart", as read live by
murb/twinfield lib/twinfield/browse/transaction/customer.rb; the yearperiod column as in
wp-twinfield/twinfield tests/xml/Transactions/browse-100.xml). A field outside it is refused, and
so is an operator other than `none`, `equal`, `between`, `like` (the operators known to exist:
php-twinfield/twinfield src/Enums/BrowseColumnOperator.php); `in`, `notequal`, … are not
accepted. An empty `from` means "no filter", like an unanswered ask-field in Twinfield's browser.

One field outside the definition is accepted: `fin.trs.head.office`, which a live client sends on
browse 100 with `equal` and the company and reads back as a column (murb/twinfield commit 8e78413,
lib/twinfield/browse/transaction/customer.rb "use office on find"; the field is column 1 of other
transaction browses, wp-twinfield/twinfield tests/xml/browse-code-130_1.xml). Any other field
outside the definition (`fin.trs.line.description` included: no real browse-100 definition or
answer shows it) is answered as integrators report Twinfield does: `<browse result="0">`
carrying "Veld bestaat niet." (CodeMill-Solutions/twinfield-mcp CHANGELOG.md 0.2.0 and
src/tools/transactions.ts quote the message; its browse parser,
src/twinfield-client.ts normalizeBrowseResult, reads `result` and `msg` from `<browse>`).
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from .context import Context
from .state import Office, Transaction, TxLine
from .values import dutch_date, fmt_cents, parse_cents
from .xmlutil import mark, settle, sub, text_of

STATUS_NAMES = {"final": "Definitief", "temporary": "Concept"}
MATCHSTATUS_NAMES = {
    "available": "Beschikbaar",
    "matched": "Afgeletterd",
    "proposed": "Voorgesteld",
    "notmatchable": "Niet afletterbaar",
}
OPERATORS = ("none", "equal", "between", "like")

Getter = Callable[[Office, Transaction, TxLine], str]


@dataclass(frozen=True)
class Field:
    label: str
    type: str  # String | Decimal | Value | Date
    get: Getter
    names: dict[str, str] | None = None
    # the definition's column: shown by default, asked, default operator and from, finder
    visible: bool = True
    ask: bool = False
    operator: str = "none"
    default: str | None = None
    finderparam: str | None = None


def _open(line: TxLine) -> str:
    return fmt_cents(line.open_cents)


def _signed(line: TxLine) -> str:
    return fmt_cents(line.signed_cents)


def _shortname(o: Office, t: Transaction, ln: TxLine) -> str:
    return o.daybooks[t.code].shortname if t.code in o.daybooks else ""


def _dim2name(o: Office, t: Transaction, ln: TxLine) -> str:
    return o.customers[ln.dim2].name if ln.dim2 in o.customers else ""


# In the definition's order (column ids 1..21).
FIELDS_100: dict[str, Field] = {
    "fin.trs.head.yearperiod": Field("Periode", "String", lambda o, t, ln: t.period, ask=True, operator="between"),
    "fin.trs.head.code": Field(
        "Dagboek", "String", lambda o, t, ln: t.code, ask=True, operator="equal", finderparam="hidden=1"
    ),
    "fin.trs.head.shortname": Field("Naam", "String", _shortname),
    "fin.trs.head.number": Field("Boekst.nr.", "Decimal", lambda o, t, ln: str(t.number), ask=True, operator="between"),
    "fin.trs.head.status": Field(
        "Status", "String", lambda o, t, ln: t.status, STATUS_NAMES, ask=True, operator="equal", default="normal"
    ),
    "fin.trs.head.date": Field("Boekdatum", "Date", lambda o, t, ln: t.date),
    "fin.trs.line.dim2": Field(
        "Debiteur", "String", lambda o, t, ln: ln.dim2, ask=True, operator="between", finderparam="dimtype=DEB"
    ),
    "fin.trs.line.dim2name": Field("Naam", "String", _dim2name),
    "fin.trs.head.curcode": Field("Valuta", "String", lambda o, t, ln: t.currency, visible=False, operator="equal"),
    "fin.trs.line.valuesigned": Field(
        "Bedrag", "Value", lambda o, t, ln: _signed(ln), visible=False, operator="between"
    ),
    "fin.trs.line.basevaluesigned": Field("Euro", "Value", lambda o, t, ln: _signed(ln), ask=True, operator="between"),
    "fin.trs.line.repvaluesigned": Field("", "Value", lambda o, t, ln: _signed(ln), visible=False, operator="between"),
    "fin.trs.line.openbasevaluesigned": Field("Openstaand bedrag", "Value", lambda o, t, ln: _open(ln)),
    "fin.trs.line.invnumber": Field(
        "Factuurnr.", "String", lambda o, t, ln: ln.invoicenumber, ask=True, operator="equal"
    ),
    "fin.trs.line.datedue": Field("Vervaldatum", "Date", lambda o, t, ln: ln.duedate),
    "fin.trs.line.matchstatus": Field(
        "Betaalstatus", "String", lambda o, t, ln: ln.matchstatus, MATCHSTATUS_NAMES, ask=True, operator="equal"
    ),
    "fin.trs.line.matchnumber": Field(
        "Betaalnr.", "String", lambda o, t, ln: "" if ln.matchnumber is None else str(ln.matchnumber)
    ),
    "fin.trs.line.matchdate": Field("Betaaldatum", "Date", lambda o, t, ln: ln.matchdate, ask=True, operator="between"),
    "fin.trs.line.openvaluesigned": Field(
        "Openstaand bedrag transactievaluta", "Value", lambda o, t, ln: _open(ln), visible=False
    ),
    "fin.trs.line.availableforpayruns": Field(
        "Beschikbaar voor betaalrun",
        "String",
        lambda o, t, ln: "true" if ln.matchstatus == "available" else "false",
        {"true": "Ja", "false": "Nee"},
        visible=False,
    ),
    "fin.trs.line.modified": Field("Wijzigingsdatum", "Date", lambda o, t, ln: t.date, ask=True, operator="between"),
}
UNKNOWN_FIELD = "Veld bestaat niet."

BROWSES = {"100": ("Debiteurenkaart", FIELDS_100)}
# Accepted in a request though the definition does not list them (module docstring).
ALSO_ACCEPTED = {
    "100": {"fin.trs.head.office": Field("Administratie", "String", lambda o, t, ln: o.code, operator="equal")},
}


@dataclass
class _Column:
    field: str
    label: str
    visible: bool
    operator: str
    from_: str
    to: str


def columns(ctx: Context, request: etree._Element) -> etree._Element:
    code = request.get("code", "")
    echo = copy.deepcopy(request)
    if code not in BROWSES:
        mark(echo, f"Browse code {code} bestaat niet of wordt door de sandbox niet ondersteund.")
        settle(echo)
        return echo
    fields = {**BROWSES[code][1], **ALSO_ACCEPTED.get(code, {})}
    if any(text_of(column_el, "field") not in fields for column_el in echo.findall("column")):
        refused = etree.Element("browse")
        mark(refused, UNKNOWN_FIELD)
        settle(refused)
        return refused
    cols: list[_Column] = []
    for column_el in echo.findall("column"):
        name = text_of(column_el, "field")
        operator = text_of(column_el, "operator", "none").lower()
        if operator not in OPERATORS:
            target = column_el.find("operator")
            mark(target if target is not None else column_el, f"Onbekende operator '{operator}'.")
            continue
        cols.append(
            _Column(
                field=name,
                label=text_of(column_el, "label") or fields[name].label,
                # A column without <visible> is shown: clients that leave it out want the data.
                visible=text_of(column_el, "visible", "true").lower() == "true",
                operator=operator,
                from_=text_of(column_el, "from"),
                to=text_of(column_el, "to"),
            )
        )
    # The office is the header's CompanyCode (or a <office> element).
    office_code = text_of(echo, "office")
    office = ctx.office_for(office_code)
    if office is None:
        mark(echo, f"Administratie {office_code} bestaat niet of u heeft er geen toegang toe.")
    if not settle(echo):
        return echo
    assert office is not None

    rows = [
        (tx, line)
        for tx, line in _candidates(ctx, office, cols)
        if all(_passes(fields[c.field], c, office, tx, line) for c in cols)
    ]
    rows.sort(key=lambda row: (row[0].code, row[0].number, row[1].id))
    for field_el in reversed(echo.findall("sort/field")):
        name = (field_el.text or "").strip()
        if name in fields:
            descending = field_el.get("order", "ascending") == "descending"
            field = fields[name]
            rows.sort(key=lambda row, f=field: _sort_key(f, office, *row), reverse=descending)  # type: ignore[misc]

    visible = [c for c in cols if c.visible]
    root = etree.Element("browse", result="1")
    root.set("first", "1" if rows else "0")
    root.set("last", str(len(rows)))
    root.set("total", str(len(rows)))
    th = sub(root, "th")
    for col in visible:
        sub(th, "td", col.field, label=col.label, hideforuser="false", type=fields[col.field].type)
    for tx, line in rows:
        tr = sub(root, "tr")
        for col in visible:
            spec = fields[col.field]
            value = spec.get(office, tx, line)
            td = sub(tr, "td", value or None, field=col.field, hideforuser="false", type=spec.type)
            if spec.type == "Date" and value:
                td.set("name", dutch_date(value))
            elif spec.names and value in spec.names:
                td.set("name", spec.names[value])
        key = sub(tr, "key")
        sub(key, "office", office.code)
        sub(key, "code", tx.code)
        sub(key, "number", tx.number)
        sub(key, "line", line.id)
    return root


def _candidates(ctx: Context, office: Office, cols: list[_Column]):
    """Customer lines worth filtering: narrowed through an index when the request has an
    equal-filter on invoice number or customer, otherwise every customer line of the office."""
    state = ctx.state
    keys = None
    for col in cols:
        if col.operator != "equal" or not col.from_:
            continue
        if col.field == "fin.trs.line.invnumber":
            keys = state.lines_by_invoice.get((office.code, col.from_.lower()), {})
            break
        if col.field == "fin.trs.line.dim2":
            keys = state.lines_by_customer.get((office.code, col.from_.lower()), {})
    if keys is None:
        keys = state.customer_lines.get(office.code, {})
    for code, number, line_id in list(keys):
        tx = state.find_transaction(office.code, code, number)
        line = tx.line(line_id) if tx is not None else None
        if tx is not None and line is not None and line.matchable:
            yield tx, line


def _sort_key(spec: Field, office: Office, tx: Transaction, line: TxLine) -> tuple:
    value = spec.get(office, tx, line)
    if spec.type in ("Value", "Decimal"):
        return (0, parse_cents(value) or 0, "")
    return (1, 0, value)


def _passes(spec: Field, col: _Column, office: Office, tx: Transaction, line: TxLine) -> bool:
    if col.operator == "none" or (not col.from_ and not col.to):
        return True
    value = spec.get(office, tx, line)
    if col.field == "fin.trs.head.status" and col.from_.lower() == "normal":
        # "normal" is Twinfield's shorthand for provisional plus final.
        return value in ("temporary", "final")
    numeric = spec.type in ("Value", "Decimal")

    def cmp_value(text: str) -> object:
        if numeric:
            return parse_cents(text)
        return text.lower()

    current = cmp_value(value)
    low = cmp_value(col.from_) if col.from_ else None
    if col.operator == "equal":
        return current == low
    if col.operator == "like":
        pattern = col.from_.lower().replace("%", "*")
        return fnmatch.fnmatchcase(value.lower(), pattern)
    if current is None:
        return False
    high = cmp_value(col.to) if col.to else None
    # between
    if low is not None and current < low:  # type: ignore[operator]
        return False
    return not (high is not None and current > high)  # type: ignore[operator]


def definition(ctx: Context, request: etree._Element) -> etree._Element:
    """`<read><type>browse</type><office/><code>100</code></read>`."""
    code = text_of(request, "code")
    office = ctx.office_for(text_of(request, "office"))
    if code not in BROWSES or office is None:
        echo = copy.deepcopy(request)
        target = echo.find("code") if office is not None else echo.find("office")
        msg = f"Browse code {code} bestaat niet." if office is not None else "Administratie onbekend."
        mark(target if target is not None else echo, msg)
        settle(echo)
        return echo
    name, fields = BROWSES[code]
    root = etree.Element("browse", result="1")
    # As real definitions name the office (php-twinfield/twinfield tests/IntegrationTests/resources/
    # browseDefinitionGetResponse.xml, wp-twinfield/twinfield tests/xml/browse-code-130_1.xml).
    sub(root, "office", office.code, name=office.name, shortname=office.shortname)
    sub(root, "code", code)
    sub(root, "name", name)
    sub(root, "shortname", name)
    sub(root, "visible", "true")
    cols = sub(root, "columns", code=code)
    for index, (field_name, spec) in enumerate(fields.items(), start=1):
        col = sub(cols, "column", id=index)
        sub(col, "field", field_name)
        sub(col, "label", spec.label or None)
        sub(col, "visible", "true" if spec.visible else "false")
        sub(col, "ask", "true" if spec.ask else "false")
        sub(col, "operator", spec.operator)
        sub(col, "from", spec.default)
        sub(col, "to")
        sub(col, "finderparam", spec.finderparam)
    return root
