"""Twinfield's XML, built and read with lxml (reference §2–§5): the SOAP envelope around
ProcessXmlString, ``<transactions>``, ``<columns code="100">``, ``<match>``, customer reads and
updates, and the ``result``/``msg`` convention of the answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from lxml import etree

from bookkeeping_svc.domain.booking import Memo, amount_text, parse_amount
from bookkeeping_svc.domain.invoices import OpenItem

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "http://www.twinfield.com/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SOAP_ACTION = f'"{TNS}ProcessXmlString"'
# Twinfield's XML is data from outside: no entities, no network.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


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


@dataclass(frozen=True)
class Fault:
    code: str
    message: str


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
    return etree.fromstring(result.text.encode("utf-8"), PARSER)


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


def summary(msgs: list[Message]) -> str:
    errors = [m for m in msgs if m.kind == "error"] or msgs
    return " // ".join(m.text for m in errors)[:2000]


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

BROWSE_FIELDS = (
    "fin.trs.head.office",
    "fin.trs.head.code",
    "fin.trs.head.number",
    "fin.trs.line.dim2",
    "fin.trs.line.invnumber",
    "fin.trs.line.valuesigned",
    "fin.trs.line.openbasevaluesigned",
    "fin.trs.line.matchstatus",
    "fin.trs.line.description",
)


def browse_customer_lines(office: str, invoice_numbers: list[str], daybook: str | None = None) -> str:
    """Browse 100 for the customer lines of some invoice numbers (``in`` for several, ``equal``
    for one), every year and status, so nothing is missed by a date window."""
    root = etree.Element("columns", code="100")
    filters: dict[str, tuple[str, str]] = {"fin.trs.head.office": ("equal", office)}
    if daybook:
        filters["fin.trs.head.code"] = ("equal", daybook)
    if len(invoice_numbers) == 1:
        filters["fin.trs.line.invnumber"] = ("equal", invoice_numbers[0])
    else:
        filters["fin.trs.line.invnumber"] = ("in", ",".join(invoice_numbers))
    for name in BROWSE_FIELDS:
        col = _sub(root, "column")
        _sub(col, "field", name)
        _sub(col, "visible", "true")
        if name in filters:
            operator, value = filters[name]
            _sub(col, "ask", "true")
            _sub(col, "operator", operator)
            _sub(col, "from", value)
    return _string(root)


def parse_browse(root: etree._Element) -> list[OpenItem]:
    rows = []
    for tr in root.findall("tr"):
        cells = {td.get("field"): (td.text or "").strip() for td in tr.findall("td")}
        key = tr.find("key")
        if key is None:
            continue
        rows.append(
            OpenItem(
                office=(key.findtext("office") or "").strip(),
                daybook=(key.findtext("code") or "").strip(),
                number=(key.findtext("number") or "").strip(),
                line=int((key.findtext("line") or "0").strip()),
                customer=cells.get("fin.trs.line.dim2", ""),
                invoice_number=cells.get("fin.trs.line.invnumber", ""),
                value_cents=parse_amount(cells.get("fin.trs.line.valuesigned") or "0"),
                open_cents=parse_amount(cells.get("fin.trs.line.openbasevaluesigned") or "0"),
                matchstatus=cells.get("fin.trs.line.matchstatus", ""),
                description=cells.get("fin.trs.line.description", ""),
            )
        )
    return rows


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
    # (daybook, number, line) of lines Twinfield says are already matched
    already_matched: frozenset[tuple[str, str, int]]


def parse_match(root: etree._Element) -> list[MatchResult]:
    sets = [root] if root.tag == "set" else root.findall(".//set")
    results = []
    for set_el in sets:
        already = set()
        for line in set_el.findall("lines/line"):
            msg = line.get("msg") or ""
            if "status matched" in msg or "already matched" in msg:
                already.add(
                    (
                        (line.findtext("transcode") or "").strip(),
                        (line.findtext("transnumber") or "").strip(),
                        int((line.findtext("transline") or "0").strip() or 0),
                    )
                )
        results.append(MatchResult(ok(set_el), messages(set_el), frozenset(already)))
    return results


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
