"""Electronic bank statements: `<statement target="electronicstatements">` (ProcessXml), in the
shapes of pronamic/wp-twinfield tests/xml/BankStatements/create-bank-statement-request.xml,
-response.xml and -error-response.xml.

An imported statement is answered with `importduplicate="0" result="1"`, its daybook's name, the
transactions with `count`, and the daybook's running balance as `startvalue`/`closevalue` (four
decimals, as Twinfield writes them: 108.7500 - 10.25 debit = 98.5000). A statement imported again
(same daybook, date and transactions) is refused as Twinfield refuses it: `status="fail"` and
"Duplicate found: The statement conflicts with statement <code> <date> (<n>) in company <office>.",
with empty `currency`/`startvalue`/`closevalue`. Statements are kept apart from transactions:
Twinfield turns them into bank transactions by its own matching rules, which are not modelled.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from lxml import etree

from .context import Context
from .state import Office
from .transactions import check_side_and_value
from .values import iban_is_valid, parse_date
from .xmlutil import mark, settle, sub, text_of

TARGET = "electronicstatements"


@dataclass(frozen=True)
class Imported:
    code: str
    date: str
    sequence: int  # the n-th statement of this daybook on this date
    fingerprint: tuple[tuple[str, str, int, str], ...]


def process(ctx: Context, request: etree._Element) -> etree._Element:
    echo = copy.deepcopy(request)
    for attr in ("result", "msg", "msgtype", "status", "importduplicate"):
        echo.attrib.pop(attr, None)
    office = ctx.office
    if echo.get("target") != TARGET:
        mark(echo, f"Het attribuut target moet '{TARGET}' zijn.")
    code = text_of(echo, "code")
    daybook = office.daybooks.get(code) if office is not None else None
    if not code:
        mark(echo, "Dagboek (code) is verplicht.")
    elif daybook is None or daybook.kind != "bank":
        mark(echo.find("code"), f"Dagboek {code} bestaat niet of is geen bankdagboek.")
    date = text_of(echo, "date")
    if parse_date(date) is None:
        target = echo.find("date")
        mark(target if target is not None else echo, f"Ongeldige datum '{date}'; gebruik JJJJMMDD.")
    number = text_of(echo, "statementnumber")
    if number and not number.isdigit():
        mark(echo.find("statementnumber"), f"Ongeldig afschriftnummer '{number}'.")
    lines = _check_transactions(echo)
    if office is None or not settle(echo):
        return echo
    assert daybook is not None
    fingerprint = tuple(lines)
    earlier = [s for s in ctx.state.statements.setdefault(office.code, []) if (s.code, s.date) == (code, date)]
    duplicate = next((s for s in earlier if s.fingerprint == fingerprint), None)
    if duplicate is not None:
        return _refused(echo, office, duplicate)
    ctx.state.statements[office.code].append(Imported(code, date, len(earlier) + 1, fingerprint))
    start = ctx.state.statement_balances.get((office.code, code), 0)
    close = start + sum(cents if side == "credit" else -cents for _, side, cents, _ in lines)
    ctx.state.statement_balances[(office.code, code)] = close
    echo.set("importduplicate", "0")
    echo.set("result", "1")
    echo.find("code").set("name", daybook.name)
    echo.find("code").set("shortname", daybook.shortname)
    _finish(echo, office, office.currency, _four(start), _four(close))
    return echo


def _check_transactions(echo: etree._Element) -> list[tuple[str, str, int, str]]:
    """The statement's transactions as (contra IBAN, debit/credit, cents, description)."""
    container = echo.find("transactions")
    items = container.findall("transaction") if container is not None else []
    if not items:
        mark(container if container is not None else echo, "Een afschrift moet minimaal één transactie bevatten.")
        return []
    found = []
    for item in items:
        iban = text_of(item, "contraiban")
        if iban and not iban_is_valid(iban):
            mark(item.find("contraiban"), f"IBAN {iban} is ongeldig.")
        side, cents = check_side_and_value(item, least=1)
        found.append((iban, side, cents or 0, text_of(item, "description")))
    container.set("count", str(len(items)))
    return found


def _refused(echo: etree._Element, office: Office, earlier: Imported) -> etree._Element:
    echo.set("importduplicate", "0")
    echo.set("status", "fail")
    mark(
        echo,
        f"Duplicate found: The statement conflicts with statement {earlier.code} {earlier.date} "
        f"({earlier.sequence}) in company {office.code}.",
    )
    _finish(echo, office, None, None, None)
    settle(echo)
    return echo


def _finish(echo: etree._Element, office: Office, currency: str | None, start: str | None, close: str | None) -> None:
    for name, value in (("currency", currency), ("startvalue", start), ("closevalue", close)):
        for old in echo.findall(name):
            echo.remove(old)
        sub(echo, name, value)
    sub(echo, "office", office.code, name=office.name, shortname=office.shortname or office.name)


def _four(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}00"
