"""`<match>`: matching ("afletteren") open customer items, fully or partially.

Each `<set>` is checked as a whole and applied only when clean: every line must exist, be an
available open item of the same customer, and the matched values minus write-offs must add up to
zero. A full match closes the lines (`matched`, open 0.00); a partial match leaves the rest open
and `available`. Match numbers are counted per office and customer (reference §4.3).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from lxml import etree

from .context import Context
from .state import LineMatch, MatchSet, Office, Transaction, TxLine
from .values import fmt_cents, parse_cents, parse_date
from .xmlutil import mark, settle, sub, text_of

MATCHCODE_NAMES = {"170": "Debiteuren afletteren"}


@dataclass
class _Item:
    element: etree._Element
    tx: Transaction
    line: TxLine
    value: int  # signed part of the open amount consumed
    writeoff: int  # signed


def process(ctx: Context, root: etree._Element) -> etree._Element:
    out = etree.Element(root.tag)
    ok = True
    sets = [child for child in root if isinstance(child.tag, str)]
    if root.tag == "set":
        sets = [root]
        out = None
    results = []
    for set_el in sets:
        if set_el.tag != "set":
            echo = copy.deepcopy(set_el)
            mark(echo, f"Onbekend element {set_el.tag}.")
            settle(echo)
            results.append(echo)
            ok = False
            continue
        result = match_set(ctx, set_el)
        ok = ok and result.get("result") == "1"
        results.append(result)
    if out is None:
        return results[0]
    if not results:
        mark(out, "Het bericht bevat geen set.")
        ok = False
    for result in results:
        out.append(result)
    out.set("result", "1" if ok else "0")
    return out


def match_set(ctx: Context, request: etree._Element) -> etree._Element:
    echo = copy.deepcopy(request)
    office = ctx.office_for(text_of(echo, "office"))
    if office is None:
        office_el = echo.find("office")
        mark(office_el if office_el is not None else echo, "Administratie bestaat niet of u heeft er geen toegang toe.")
        settle(echo)
        return echo

    matchcode = text_of(echo, "matchcode")
    if matchcode not in MATCHCODE_NAMES:
        target = echo.find("matchcode")
        mark(
            target if target is not None else echo,
            f"Afletteren met code '{matchcode}' wordt niet ondersteund; gebruik 170 (debiteuren).",
        )
    matchdate = text_of(echo, "matchdate") or ctx.state.today().strftime("%Y%m%d")
    if parse_date(matchdate) is None:
        mark(echo.find("matchdate"), f"Ongeldige afletterdatum {matchdate}.")

    lines_el = echo.find("lines")
    line_els = lines_el.findall("line") if lines_el is not None else []
    unavailable: list[etree._Element] = []
    items = _collect_items(ctx, office, line_els, unavailable)
    if len(line_els) < 2:
        mark(lines_el if lines_el is not None else echo, "Er zijn minimaal twee regels nodig om af te letteren.")

    customers = {item.line.dim2 for item in items}
    if len(customers) > 1:
        mark(echo, "De regels behoren niet tot dezelfde debiteur.")

    difference = sum(item.value for item in items) - sum(item.writeoff for item in items)
    if len(items) == len(line_els) and difference != 0:
        mark(echo, f"Het af te letteren saldo is niet nul; verschil {fmt_cents(difference)}.")

    matchcode_el = echo.find("matchcode")
    if matchcode in MATCHCODE_NAMES and matchcode_el is not None:
        matchcode_el.set("name", MATCHCODE_NAMES[matchcode])
    if not settle(echo):
        # Lines that could be matched are shown as on success, next to the refused ones
        # (php-twinfield/twinfield tests/UnitTests/ApiConnectors/resources/single-matchset.xml).
        for item in items:
            _enrich(office, item)
        # A set refused for unavailable lines has neither <dimensions> nor <value> (live answer,
        # murb/twinfield); otherwise the customers seen and the remaining difference follow
        # (php-twinfield's single-matchset.xml).
        if not unavailable:
            dimensions = sub(echo, "dimensions")
            for code in sorted(customers):
                sub(dimensions, "dimension", code, level="2")
            sub(echo, "value", fmt_cents(difference))
        return echo

    customer = items[0].line.dim2
    matchnumber = ctx.state.next_matchnumber(office.code, customer)
    for item in items:
        _enrich(office, item)
    for item in items:
        item.line.open_cents -= item.value
        item.line.matchnumber = matchnumber
        item.line.matchdate = matchdate
        item.line.matchstatus = "matched" if item.line.open_cents == 0 else "available"
        partners = [
            (other.tx.code, other.tx.number, other.line.id, other.value) for other in items if other is not item
        ]
        item.line.matches.append(LineMatch(matchnumber, matchdate, item.value, partners))
    ctx.state.match_sets.setdefault(office.code, []).append(
        MatchSet(
            office=office.code,
            customer=customer,
            matchnumber=matchnumber,
            matchcode=matchcode,
            matchdate=matchdate,
            lines=[
                {
                    "code": item.tx.code,
                    "number": item.tx.number,
                    "line": item.line.id,
                    "matchvalue": fmt_cents(item.value),
                    "writeoff": fmt_cents(item.writeoff),
                    "open_after": fmt_cents(item.line.open_cents),
                }
                for item in items
            ],
            client_id=ctx.client_id,
        )
    )
    dimensions = sub(echo, "dimensions")
    sub(dimensions, "dimension", customer, level="2", matchnumber=matchnumber)
    sub(echo, "value", "0.00")
    return echo


def _collect_items(
    ctx: Context, office: Office, line_els: list[etree._Element], unavailable: list[etree._Element]
) -> list[_Item]:
    """Resolve each request line; lines that fail get their message and are left out (those not
    available for matching also in ``unavailable``)."""
    items: list[_Item] = []
    seen: set[tuple[str, int, int]] = set()
    for line_el in line_els:
        code = text_of(line_el, "transcode")
        raw_number = text_of(line_el, "transnumber")
        raw_line = text_of(line_el, "transline")
        tx = None
        line = None
        if raw_number.isdigit() and raw_line.isdigit():
            tx = ctx.state.find_transaction(office.code, code, int(raw_number))
            line = tx.line(int(raw_line)) if tx else None
        if tx is None or line is None:
            mark(line_el, "De regel bestaat niet.")
            continue
        key = (code, tx.number, line.id)
        if key in seen:
            mark(line_el, "De regel komt meerdere keren voor in de set.")
            continue
        seen.add(key)
        if not line.matchable:
            mark(line_el, "De regel kan niet worden afgeletterd.")
            continue
        if line.matchstatus != "available":
            # As a live answer says it (murb/twinfield spec/twinfield/transaction_spec.rb), with
            # the line's origin and status added.
            mark(line_el, f"Boeking {tx.code} {tx.number} regel {line.id} is niet beschikbaar voor afletteren.")
            sub(line_el, "origin", tx.origin)
            sub(line_el, "status", tx.status)
            unavailable.append(line_el)
            continue
        value = line.open_cents
        raw_value = text_of(line_el, "matchvalue")
        if raw_value:
            parsed = parse_cents(raw_value)
            if parsed is None or parsed == 0:
                mark(line_el.find("matchvalue"), f"Ongeldig bedrag '{raw_value}'.")
                continue
            if (parsed > 0) != (line.open_cents > 0) or abs(parsed) > abs(line.open_cents):
                mark(
                    line_el.find("matchvalue"),
                    f"Het af te letteren bedrag {raw_value} past niet bij het openstaande bedrag "
                    f"{fmt_cents(line.open_cents)}.",
                )
                continue
            value = parsed
        writeoff = 0
        raw_writeoff = text_of(line_el, "writeoff")
        if raw_writeoff:
            parsed = parse_cents(raw_writeoff)
            if parsed is None:
                mark(line_el.find("writeoff"), f"Ongeldig bedrag '{raw_writeoff}'.")
                continue
            writeoff = parsed
        items.append(_Item(line_el, tx, line, value, writeoff))
    return items


def _enrich(office: Office, item: _Item) -> None:
    """A line that can be matched, as Twinfield answers it: the request's own elements in the
    request's order, then what Twinfield adds (murb/twinfield spec/twinfield/transaction_spec.rb
    without ``matchvalue`` in the request, php-twinfield's single-matchset.xml with it). The open
    values are those before this match: a full match of 221.00 still shows ``valueopen`` 221.00."""
    line_el = item.element
    line_el.set("result", "1")
    daybook = office.daybooks[item.tx.code]
    transcode = line_el.find("transcode")
    if transcode is not None:
        transcode.set("name", daybook.name)
        transcode.set("shortname", daybook.shortname)
    open_value = fmt_cents(item.line.open_cents)
    value = fmt_cents(item.value)
    added = (
        ("origin", item.tx.origin),
        ("status", item.tx.status),
        ("dim1", item.line.dim1),
        ("dim2", item.line.dim2),
        ("matchlevel", "2"),
        ("basevalueopen", open_value),
        ("repvalueopen", open_value),
        ("valueopen", open_value),
        ("matchvalue", value),
        ("matchvaluerep", value),
        ("matchvaluecur", value),
    )
    for tag, text in added:
        if line_el.find(tag) is None:
            sub(line_el, tag, text)
