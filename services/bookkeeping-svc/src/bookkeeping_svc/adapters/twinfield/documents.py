"""Twinfield's XML, built and read with lxml (reference §2–§5): the SOAP envelope around
ProcessXmlString, ``<transactions>``, ``<columns code="100">``, ``<match>``, customer reads and
updates, and the ``result``/``msg`` convention of the answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from lxml import etree

from bookkeeping_svc.adapters.twinfield.errors import Fault
from bookkeeping_svc.domain.booking import Memo, amount_text, parse_amount
from bookkeeping_svc.domain.invoices import OpenItem

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "http://www.twinfield.com/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SOAP_ACTION = f'"{TNS}ProcessXmlString"'
# Twinfield's XML is data from outside: no entities, no network.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
# The inner document of ProcessXmlStringResult is already text; a declaration inside it
# (``encoding="utf-16"`` from a .NET string writer) must not be believed.
INNER_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True, encoding="utf-8")


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, tag, **attrs)
    if text is not None:
        el.text = text
    return el


def _string(root: etree._Element) -> str:
    return etree.tostring(root, encoding="unicode")


def ymd(day: date) -> str:
    return day.strftime("%Y%m%d")


# -- SOAP --------------------------------------------------------------------------------------


def envelope(access_token: str, office: str | None, request_xml: str) -> bytes:
    env = etree.Element(f"{{{SOAP11}}}Envelope", nsmap={"soap": SOAP11, "xsi": XSI})
    header = etree.SubElement(etree.SubElement(env, f"{{{SOAP11}}}Header"), f"{{{TNS}}}Header", nsmap={None: TNS})
    etree.SubElement(header, f"{{{TNS}}}AccessToken").text = access_token
    if office:
        etree.SubElement(header, f"{{{TNS}}}CompanyCode").text = office
    etree.SubElement(header, f"{{{TNS}}}CompanyId").set(f"{{{XSI}}}nil", "true")
    body = etree.SubElement(env, f"{{{SOAP11}}}Body")
    wrapper = etree.SubElement(body, f"{{{TNS}}}ProcessXmlString", nsmap={None: TNS})
    etree.SubElement(wrapper, f"{{{TNS}}}xmlRequest").text = request_xml
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def parse_envelope(content: bytes) -> etree._Element | Fault:
    """The inner Twinfield document of a ProcessXmlString answer, or the SOAP fault."""
    env = etree.fromstring(content, PARSER)
    body = env.find(f"{{{SOAP11}}}Body")
    if body is None:
        raise ValueError("SOAP answer without a Body")
    fault = body.find(f"{{{SOAP11}}}Fault")
    if fault is not None:
        return Fault(
            code=(fault.findtext("detail/code") or "").strip(),
            message=(fault.findtext("detail/message") or fault.findtext("faultstring") or "").strip(),
        )
    result = body.find(f"{{{TNS}}}ProcessXmlStringResponse/{{{TNS}}}ProcessXmlStringResult")
    if result is None or not result.text:
        raise ValueError("SOAP answer without ProcessXmlStringResult")
    return etree.fromstring(result.text.strip().encode("utf-8"), INNER_PARSER)


# -- result / msg ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    node: str
    text: str
    kind: str  # error | warning


def messages(root: etree._Element) -> list[Message]:
    """Every ``msg`` in a subtree (Twinfield joins several on one node with ``//``)."""
    found = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        msg = el.get("msg")
        if msg:
            for part in msg.split("//"):
                if part.strip():
                    found.append(Message(el.tag, part.strip(), el.get("msgtype", "error")))
    return found


def ok(root: etree._Element) -> bool:
    return root.get("result") == "1"


def errors_first(msgs: list[Message]) -> list[Message]:
    """The errors; the warnings only when there is no error (they are never mixed up)."""
    return [m for m in msgs if m.kind == "error"] or msgs


def summary(msgs: list[Message]) -> str:
    return " // ".join(m.text for m in errors_first(msgs))[:2000]


# -- transactions ------------------------------------------------------------------------------


def transactions(office: str, memos: list[Memo]) -> str:
    root = etree.Element("transactions")
    for memo in memos:
        tx = _sub(root, "transaction", destiny="final", raisewarning="false")
        header = _sub(tx, "header")
        _sub(header, "office", office)
        _sub(header, "code", memo.daybook)
        _sub(header, "currency", "EUR")
        _sub(header, "date", ymd(memo.date))
        if memo.freetext:
            _sub(header, f"freetext{memo.freetext[0]}", memo.freetext[1])
        lines = _sub(tx, "lines")
        for index, line in enumerate(memo.lines, start=1):
            el = _sub(lines, "line", type="detail", id=str(index))
            _sub(el, "dim1", line.dim1)
            if line.dim2:
                _sub(el, "dim2", line.dim2)
            _sub(el, "debitcredit", line.debitcredit)
            _sub(el, "value", amount_text(line.value_cents))
            if line.invoicenumber:
                _sub(el, "invoicenumber", line.invoicenumber)
            _sub(el, "description", line.description)
    return _string(root)


@dataclass(frozen=True)
class Posted:
    ok: bool
    number: str | None
    messages: list[Message]


def parse_transactions(root: etree._Element) -> list[Posted]:
    """One result per ``<transaction>`` in request order (a bare ``<transaction>`` root too)."""
    items = [root] if root.tag == "transaction" else root.findall("transaction")
    return [
        Posted(ok=ok(tx), number=(tx.findtext("header/number") or "").strip() or None, messages=messages(tx))
        for tx in items
    ]


# -- browse 100 --------------------------------------------------------------------------------

# The look-up uses only fields and operators of Twinfield's own browse-100 definition ("Debiteuren-
# kaart": murb/twinfield lib/twinfield/browse/transaction/customer.rb) that real responses carry
# (wp-twinfield/twinfield tests/xml/Transactions/browse-100*.xml), with the definition's labels.
# Not used: fin.trs.head.office, which the definition does not list but a live client sends for
# 100 (``equal`` on the company, read back as a column: murb/twinfield commit 8e78413) -- not
# needed, the office is the SOAP header's CompanyCode; fin.trs.line.description, which neither
# shows for 100 (read from the transaction instead, see read_transaction); and the operator ``in``
# (one ``equal`` per invoice number instead).
LOOKUP_COLUMNS = (
    ("fin.trs.head.yearperiod", "Periode"),
    ("fin.trs.head.code", "Dagboek"),
    ("fin.trs.head.number", "Boekst.nr."),
    ("fin.trs.head.status", "Status"),
    ("fin.trs.line.dim2", "Debiteur"),
    ("fin.trs.line.basevaluesigned", "Euro"),
    ("fin.trs.line.openbasevaluesigned", "Openstaand bedrag"),
    ("fin.trs.line.invnumber", "Factuurnr."),
    ("fin.trs.line.matchstatus", "Betaalstatus"),
)
LOOKUP_FIELDS = tuple(name for name, _ in LOOKUP_COLUMNS)
# Operators confirmed for browse requests (php-twinfield/twinfield src/Enums/BrowseColumnOperator.php).
OPERATORS = ("none", "equal", "between", "like")
# All years, like the real client the definition comes from: an invoice of any year is found.
YEARS_BACK = 30


def browse_columns(
    code: str, columns: Sequence[tuple[str, str]], filters: dict[str, tuple[str, str, str | None]]
) -> str:
    """``<columns code=…>`` with every column visible (integrators report missing columns
    otherwise) and, per filtered column, ``ask``/``operator``/``from``/``to``."""
    root = etree.Element("columns", code=code)
    for name, label in columns:
        col = _sub(root, "column")
        _sub(col, "field", name)
        _sub(col, "label", label)
        _sub(col, "visible", "true")
        if name in filters:
            operator, low, high = filters[name]
            if operator not in OPERATORS:
                raise ValueError(f"browse operator {operator!r} is not one Twinfield is known to accept")
            _sub(col, "ask", "true")
            _sub(col, "operator", operator)
            _sub(col, "from", low)
            _sub(col, "to", high if high is not None else "")
    return _string(root)


def browse_customer_lines(invoice_number: str, year: int) -> str:
    """Browse 100 for the customer lines of one invoice number (``equal``), every year, provisional
    and final (``normal``, the definition's default)."""
    return browse_columns(
        "100",
        LOOKUP_COLUMNS,
        {
            "fin.trs.head.yearperiod": ("between", f"{year - YEARS_BACK}/01", f"{year + 1}/12"),
            "fin.trs.head.status": ("equal", "normal", None),
            "fin.trs.line.invnumber": ("equal", invoice_number, None),
        },
    )


class BrowseShapeError(ValueError):
    """A browse answer without a requested column: never read as 0 or ""."""


@dataclass(frozen=True)
class BrowseRow:
    cells: dict[str, str]
    office: str
    daybook: str
    number: str
    line: int


def browse_rows(root: etree._Element, fields: Sequence[str]) -> list[BrowseRow]:
    """The rows of a browse answer, each with every requested field; a field missing from
    ``<th>`` or from a row raises ``BrowseShapeError``."""
    header = {(td.text or "").strip() for td in root.findall("th/td")}
    missing = [name for name in fields if name not in header]
    if missing:
        raise BrowseShapeError(f"browse answer lacks the requested column(s) {', '.join(missing)}")
    rows = []
    for tr in root.findall("tr"):
        cells = {td.get("field") or "": (td.text or "").strip() for td in tr.findall("td")}
        absent = [name for name in fields if name not in cells]
        key = tr.find("key")
        if absent or key is None:
            raise BrowseShapeError(f"browse row lacks {', '.join(absent) or 'its key'}")
        rows.append(
            BrowseRow(
                cells,
                office=(key.findtext("office") or "").strip(),
                daybook=(key.findtext("code") or "").strip(),
                number=(key.findtext("number") or "").strip(),
                line=int((key.findtext("line") or "").strip()),
            )
        )
    return rows


def parse_browse(root: etree._Element) -> list[OpenItem]:
    return [
        OpenItem(
            office=row.office,
            daybook=row.daybook,
            number=row.number,
            line=row.line,
            customer=row.cells["fin.trs.line.dim2"],
            invoice_number=row.cells["fin.trs.line.invnumber"],
            value_cents=parse_amount(row.cells["fin.trs.line.basevaluesigned"]),
            open_cents=parse_amount(row.cells["fin.trs.line.openbasevaluesigned"]),
            matchstatus=row.cells["fin.trs.line.matchstatus"],
        )
        for row in browse_rows(root, LOOKUP_FIELDS)
    ]


# -- transaction read --------------------------------------------------------------------------


def read_transaction(office: str, daybook: str, number: str) -> str:
    root = etree.Element("read")
    _sub(root, "type", "transaction")
    _sub(root, "office", office)
    _sub(root, "code", daybook)
    _sub(root, "number", number)
    return _string(root)


@dataclass(frozen=True)
class ReadLine:
    id: int
    dim1: str
    dim2: str
    debitcredit: str
    value_cents: int
    invoicenumber: str
    description: str


def parse_transaction_read(root: etree._Element) -> list[ReadLine] | None:
    """The lines of a read transaction; None when Twinfield has no such transaction."""
    if not ok(root):
        return None
    return [
        ReadLine(
            id=int(line.get("id") or 0),
            dim1=(line.findtext("dim1") or "").strip(),
            dim2=(line.findtext("dim2") or "").strip(),
            debitcredit=(line.findtext("debitcredit") or "").strip(),
            value_cents=parse_amount(line.findtext("value") or ""),
            invoicenumber=(line.findtext("invoicenumber") or "").strip(),
            description=(line.findtext("description") or "").strip(),
        )
        for line in root.findall("lines/line")
    ]


# -- match -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchLine:
    daybook: str
    number: str
    line: int


def match(office: str, sets: Sequence[tuple[MatchLine, ...]], on: date) -> str:
    root = etree.Element("match")
    for lines in sets:
        set_el = _sub(root, "set")
        _sub(set_el, "office", office)
        _sub(set_el, "matchcode", "170")
        _sub(set_el, "matchdate", ymd(on))
        lines_el = _sub(set_el, "lines")
        for item in lines:
            line_el = _sub(lines_el, "line")
            _sub(line_el, "transcode", item.daybook)
            _sub(line_el, "transnumber", item.number)
            _sub(line_el, "transline", str(item.line))
    return _string(root)


@dataclass(frozen=True)
class MatchResult:
    ok: bool
    messages: list[Message]


def parse_match(root: etree._Element) -> list[MatchResult]:
    """One result per ``<set>``, whatever the root is called: live answers have ``<match>``
    (murb/twinfield spec/twinfield/transaction_spec.rb), php-twinfield's fixture ``<sets>``. What
    a failed set means is not read from its wording: the caller looks at the lines again."""
    sets = [root] if root.tag == "set" else root.findall("set")
    return [MatchResult(ok(set_el), messages(set_el)) for set_el in sets]


# -- customers (DEB) ---------------------------------------------------------------------------


def read_customer(office: str, code: str) -> str:
    root = etree.Element("read")
    _sub(root, "type", "dimensions")
    _sub(root, "office", office)
    _sub(root, "dimtype", "DEB")
    _sub(root, "code", code)
    return _string(root)


def customer_email(root: etree._Element) -> str | None:
    """The e-mail Twinfield holds for a customer: default invoice address, then e-billing, then
    the reminder address (reference §5.2)."""
    for path in (
        "addresses/address[@default='true']/email",
        "addresses/address/email",
        "financials/ebillmail",
        "creditmanagement/reminderemail",
    ):
        value = (root.findtext(path) or "").strip()
        if value:
            return value
    return None


@dataclass(frozen=True)
class CustomerBank:
    code: str
    iban: str
    bic: str | None
    ascription: str | None
    mandate_id: str | None
    signature_date: date | None
    scheme: str | None  # core | b2b


def customer_bank_update(office: str, updates: list[CustomerBank]) -> str:
    """Bank account and collect mandate on existing customers (no name: never creates one)."""
    root = etree.Element("dimensions")
    for item in updates:
        dim = _sub(root, "dimension")
        _sub(dim, "office", office)
        _sub(dim, "type", "DEB")
        _sub(dim, "code", item.code)
        if item.mandate_id:
            fin = _sub(dim, "financials")
            if item.scheme:
                _sub(fin, "collectionschema", item.scheme)
            mandate = _sub(fin, "collectmandate")
            _sub(mandate, "id", item.mandate_id[:35])
            if item.signature_date:
                _sub(mandate, "signaturedate", ymd(item.signature_date))
        banks = _sub(dim, "banks")
        bank = _sub(banks, "bank", default="true")
        if item.ascription:
            _sub(bank, "ascription", item.ascription[:40])
        _sub(bank, "iban", item.iban)
        if item.bic:
            _sub(bank, "biccode", item.bic)
    return _string(root)


def parse_dimensions(root: etree._Element) -> list[tuple[bool, list[Message]]]:
    items = [root] if root.tag == "dimension" else root.findall("dimension")
    return [(ok(item), messages(item)) for item in items]
