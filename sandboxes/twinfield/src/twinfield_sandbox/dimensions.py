"""Customers (dimension type DEB): `<read>`, `<list>`, and create/update through
`<dimensions>`/`<dimension>`; also `<list><type>offices</type></list>`.

An update changes only what the request carries. Banks are merged: a `<bank id="…">` updates that
bank, a bank with a known IBAN updates that one, any other bank is added; a `default="true"` bank
becomes the only default. `financials/collectmandate` replaces the mandate fields it names.
"""

from __future__ import annotations

import copy
import re

from lxml import etree

from .context import Context
from .state import Address, Bank, CollectMandate, Customer, Office
from .values import iban_is_valid, parse_date
from .wording import dimension_missing
from .xmlutil import mark, settle, sub, text_of

MAX_ASCRIPTION = 40
MAX_MANDATE_ID = 35  # SEPA mandate reference limit
MAX_NAME = 80
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
BANK_FIELDS = (
    "ascription",
    "accountnumber",
    "bankname",
    "biccode",
    "city",
    "country",
    "iban",
    "natbiccode",
    "postcode",
    "state",
)
ADDRESS_FIELDS = ("name", "country", "city", "postcode", "telephone", "email", "contact", "field1", "field2", "field3")


# -- reading ------------------------------------------------------------------------------------


def read(ctx: Context, request: etree._Element) -> etree._Element:
    office = ctx.office_for(text_of(request, "office"))
    dimtype = text_of(request, "dimtype")
    code = text_of(request, "code")
    if office is None or dimtype != "DEB" or code not in office.customers:
        root = etree.Element("dimension")
        # A known office and type keep their names, as pronamic/wp-twinfield tests/xml/Dimensions/
        # dimension-read-response-dimension-does-not-exists-nl-NL.xml shows them.
        named_office = {"name": office.name, "shortname": office.shortname} if office is not None else {}
        office_el = sub(root, "office", text_of(request, "office"), **named_office)
        named_type = {"name": "Debiteuren", "shortname": "Debiteuren"} if dimtype == "DEB" else {}
        type_el = sub(root, "type", dimtype, **named_type)
        code_el = sub(root, "code", code)
        if office is None:
            mark(office_el, "Administratie bestaat niet of u heeft er geen toegang toe.")
        elif dimtype != "DEB":
            mark(type_el, f"Dimensietype {dimtype} wordt door de sandbox niet ondersteund; gebruik DEB.")
        else:
            mark(code_el, dimension_missing(code, ctx.language))
        settle(root)
        return root
    return render(office, office.customers[code])


def render(office: Office, customer: Customer) -> etree._Element:
    root = etree.Element("dimension", status=customer.status, result="1")
    sub(root, "office", office.code, name=office.name, shortname=office.shortname)
    sub(root, "type", "DEB", name="Debiteuren", shortname="Debiteuren")
    sub(root, "code", customer.code)
    sub(root, "uid", customer.uid)
    sub(root, "name", customer.name)
    sub(root, "shortname", customer.shortname)
    sub(root, "inuse", "false")
    sub(root, "behaviour", "normal")
    sub(root, "touched", "0")
    sub(root, "beginperiod", "0")
    sub(root, "beginyear", "0")
    sub(root, "endperiod", "0")
    sub(root, "endyear", "0")
    sub(root, "website", customer.website)
    sub(root, "cocnumber")
    sub(root, "vatnumber")
    sub(root, "editdimensionname", "true")
    fin = sub(root, "financials")
    sub(fin, "matchtype", "customersupplier")
    sub(fin, "accounttype", "inherit")
    sub(fin, "subanalyse", "false")
    sub(fin, "duedays", customer.duedays)
    sub(fin, "level", "2")
    sub(fin, "payavailable", str(customer.payavailable).lower())
    sub(fin, "meansofpayment", "paymentfile" if customer.payavailable else "none")
    sub(fin, "paycode", customer.paycode)
    sub(fin, "ebilling", str(customer.ebilling).lower())
    sub(fin, "ebillmail", customer.ebillmail)
    sub(fin, "substitutionlevel", "1")
    sub(fin, "substitutewith", "1300", name="Debiteuren", shortname="Debiteuren", dimensiontype="BAS")
    sub(fin, "relationsreference")
    sub(fin, "vattype")
    sub(fin, "vatcode")
    sub(fin, "vatobligatory", "false")
    sub(fin, "performancetype")
    mandate = sub(fin, "collectmandate")
    sub(mandate, "id", customer.mandate.id)
    sub(mandate, "signaturedate", customer.mandate.signaturedate)
    sub(mandate, "firstrundate", customer.mandate.firstrundate)
    sub(fin, "collectionschema", customer.collectionschema)
    credit = sub(root, "creditmanagement")
    sub(credit, "responsibleuser")
    sub(credit, "basecreditlimit", "0.00")
    sub(credit, "sendreminder", "true")
    sub(credit, "reminderemail", customer.reminderemail)
    sub(credit, "blocked", "false")
    sub(credit, "freetext1")
    sub(credit, "freetext2")
    sub(credit, "freetext3")
    sub(credit, "comment")
    addresses = sub(root, "addresses")
    for address in customer.addresses:
        el = sub(addresses, "address", id=address.id, type=address.type, default=str(address.default).lower())
        for name in ADDRESS_FIELDS:
            sub(el, name, getattr(address, name))
        sub(el, "telefax")
        for name in ("field4", "field5", "field6"):
            sub(el, name)
    banks = sub(root, "banks")
    for bank in customer.banks:
        el = sub(banks, "bank", id=bank.id, default=str(bank.default).lower())
        for name in BANK_FIELDS:
            sub(el, name, getattr(bank, name))
        address = sub(el, "address")
        sub(address, "field2")
        sub(address, "field3")
    sub(root, "postingrules")
    sub(root, "paymentconditions")
    return root


# Types `<list><type>dimensions</type>` answers: customers, and the general ledger accounts of
# the balance sheet (BAS) and profit and loss (PNL) that CodeMill-Solutions/twinfield-mcp
# src/tools/dimensions.ts lists the same way (pronamic/wp-twinfield src/DimensionTypes.php names
# BAS "Balancesheet", PNL "Profit and Loss").
LISTED_TYPES = ("DEB", "BAS", "PNL")


def list_dimensions(ctx: Context, request: etree._Element) -> etree._Element:
    """`<dimensions office type result><dimension name shortname>CODE</dimension>…`, closed by an
    entry whose code is the type itself with an empty name, as Twinfield answers (php-twinfield/
    twinfield tests/IntegrationTests/resources/customerListResponse.xml ends with `DEB`; twinfield-mcp
    drops that marker for every type it lists)."""
    office = ctx.office_for(text_of(request, "office"))
    dimtype = text_of(request, "dimtype")
    root = etree.Element("dimensions", office=office.code if office else text_of(request, "office"), type=dimtype)
    if office is None:
        mark(root, "Administratie bestaat niet of u heeft er geen toegang toe.")
    elif dimtype not in LISTED_TYPES:
        mark(root, f"Dimensietype {dimtype} wordt door de sandbox niet ondersteund; gebruik DEB, BAS of PNL.")
    else:
        entries: list[tuple[str, str, str]]
        if dimtype == "DEB":
            entries = [(c.code, c.name, c.shortname) for c in office.customers.values()]
        else:
            entries = [(a.code, a.name, "") for a in office.accounts.values() if a.type == dimtype]
        for code, name, shortname in sorted(entries):
            sub(root, "dimension", code, name=name, shortname=shortname)
        sub(root, "dimension", dimtype, name="", shortname="")
    settle(root)
    return root


def list_offices(ctx: Context) -> etree._Element:
    root = etree.Element("offices", result="1")
    for office in sorted(ctx.state.offices_of(ctx.organisation), key=lambda o: o.code):
        sub(root, "office", office.code, name=office.name, shortname=office.shortname)
    return root


# -- writing ------------------------------------------------------------------------------------


def process(ctx: Context, root: etree._Element) -> etree._Element:
    if root.tag == "dimension":
        return save(ctx, root)
    out = etree.Element("dimensions")
    ok = True
    for child in root:
        if isinstance(child.tag, str):
            result = save(ctx, child)
            ok = ok and result.get("result") == "1"
            out.append(result)
    out.set("result", "1" if ok else "0")
    return out


def save(ctx: Context, request: etree._Element) -> etree._Element:
    """Create or update one customer. Checks everything first, then applies, so a rejected
    request changes nothing."""
    echo = copy.deepcopy(request)
    if echo.tag != "dimension":
        mark(echo, f"Onbekend element {echo.tag}.")
        settle(echo)
        return echo
    office = ctx.office_for(text_of(echo, "office"))
    if office is None:
        target = echo.find("office")
        mark(target if target is not None else echo, "Administratie bestaat niet of u heeft er geen toegang toe.")
    dimtype = text_of(echo, "type")
    if dimtype != "DEB":
        target = echo.find("type")
        mark(
            target if target is not None else echo,
            f"Dimensietype '{dimtype}' wordt door de sandbox niet ondersteund; gebruik DEB.",
        )
    code = text_of(echo, "code")
    existing = office.customers.get(code) if office is not None and code else None
    if not code:
        # Twinfield can number new customers itself; the sandbox asks for a code to keep
        # records predictable.
        mark(echo, "Code is verplicht.")
    name = text_of(echo, "name")
    if existing is None and not name:
        mark(echo, "Naam is verplicht voor een nieuwe debiteur.")
    if len(name) > MAX_NAME:
        mark(echo.find("name"), f"Naam mag maximaal {MAX_NAME} tekens bevatten.")
    _check_financials(echo)
    _check_addresses(echo)
    _check_banks(echo)
    payavailable = text_of(echo, "financials/payavailable")
    if payavailable == "true":
        paycode = text_of(echo, "financials/paycode") or (existing.paycode if existing else "")
        if not paycode:
            mark(
                echo.find("financials/payavailable"), "Bij automatische incasso is een betaalcode (paycode) verplicht."
            )
        has_bank = bool(echo.findall("banks/bank")) or bool(existing and existing.banks)
        if not has_bank:
            mark(echo.find("financials/payavailable"), "Bij automatische incasso is een bankrekening verplicht.")
    if not settle(echo):
        return echo
    assert office is not None
    customer = existing or Customer(code=code, name=name)
    _apply(ctx, customer, echo)
    customer.modified = ctx.state.now()
    office.customers[code] = customer
    return render(office, customer)


def _check_financials(echo: etree._Element) -> None:
    fin = echo.find("financials")
    if fin is None:
        return
    for flag in ("payavailable", "ebilling"):
        value = text_of(fin, flag)
        if value and value not in ("true", "false"):
            mark(fin.find(flag), f"{flag} moet true of false zijn.")
    duedays = text_of(fin, "duedays")
    if duedays and not duedays.isdigit():
        mark(fin.find("duedays"), "duedays moet een geheel getal zijn.")
    ebillmail = text_of(fin, "ebillmail")
    if ebillmail and not EMAIL.match(ebillmail):
        mark(fin.find("ebillmail"), f"Ongeldig e-mailadres {ebillmail}.")
    schema = text_of(fin, "collectionschema")
    if schema and schema not in ("core", "b2b"):
        mark(fin.find("collectionschema"), "collectionschema moet core of b2b zijn.")
    mandate = fin.find("collectmandate")
    if mandate is not None:
        mandate_id = text_of(mandate, "id")
        if len(mandate_id) > MAX_MANDATE_ID:
            mark(mandate.find("id"), f"Mandaatkenmerk mag maximaal {MAX_MANDATE_ID} tekens bevatten.")
        for name in ("signaturedate", "firstrundate"):
            value = text_of(mandate, name)
            if value and parse_date(value) is None:
                mark(mandate.find(name), f"Ongeldige datum {value}; gebruik JJJJMMDD.")


def _check_addresses(echo: etree._Element) -> None:
    for address in echo.findall("addresses/address"):
        email = text_of(address, "email")
        if email and not EMAIL.match(email):
            mark(address.find("email"), f"Ongeldig e-mailadres {email}.")


def _check_banks(echo: etree._Element) -> None:
    for bank in echo.findall("banks/bank"):
        iban = text_of(bank, "iban")
        if iban and not iban_is_valid(iban):
            mark(bank.find("iban"), f"IBAN {iban} is ongeldig.")
        if not iban and not text_of(bank, "accountnumber"):
            mark(bank, "Een bankrekening heeft een IBAN of rekeningnummer nodig.")
        if len(text_of(bank, "ascription")) > MAX_ASCRIPTION:
            mark(bank.find("ascription"), f"Tenaamstelling mag maximaal {MAX_ASCRIPTION} tekens bevatten.")


def _apply(ctx: Context, customer: Customer, echo: etree._Element) -> None:
    for name in ("name", "shortname", "website"):
        if echo.find(name) is not None:
            setattr(customer, name, text_of(echo, name))
    if echo.get("status") in ("active", "hide", "deleted"):
        customer.status = echo.get("status", "active")
    fin = echo.find("financials")
    if fin is not None:
        if fin.find("duedays") is not None and text_of(fin, "duedays"):
            customer.duedays = int(text_of(fin, "duedays"))
        for flag in ("payavailable", "ebilling"):
            if fin.find(flag) is not None:
                setattr(customer, flag, text_of(fin, flag) == "true")
        for name in ("paycode", "ebillmail", "collectionschema"):
            if fin.find(name) is not None:
                setattr(customer, name, text_of(fin, name))
        mandate = fin.find("collectmandate")
        if mandate is not None:
            current = customer.mandate
            customer.mandate = CollectMandate(
                id=text_of(mandate, "id") if mandate.find("id") is not None else current.id,
                signaturedate=(
                    text_of(mandate, "signaturedate")
                    if mandate.find("signaturedate") is not None
                    else current.signaturedate
                ),
                firstrundate=(
                    text_of(mandate, "firstrundate")
                    if mandate.find("firstrundate") is not None
                    else current.firstrundate
                ),
            )
    credit = echo.find("creditmanagement")
    if credit is not None and credit.find("reminderemail") is not None:
        customer.reminderemail = text_of(credit, "reminderemail")
    for address_el in echo.findall("addresses/address"):
        _merge_address(ctx, customer, address_el)
    for bank_el in echo.findall("banks/bank"):
        _merge_bank(ctx, customer, bank_el)


def _merge_address(ctx: Context, customer: Customer, el: etree._Element) -> None:
    address_id = el.get("id", "")
    address = next((a for a in customer.addresses if str(a.id) == address_id), None)
    if address is None and el.get("default") == "true":
        address = next((a for a in customer.addresses if a.default), None)
    if address is None:
        address = Address(id=ctx.state.next_id(), default=not customer.addresses)
        customer.addresses.append(address)
    address.type = el.get("type", address.type)
    for name in ADDRESS_FIELDS:
        if el.find(name) is not None:
            setattr(address, name, text_of(el, name))
    if el.get("default") == "true":
        for other in customer.addresses:
            other.default = other is address


def _merge_bank(ctx: Context, customer: Customer, el: etree._Element) -> None:
    bank_id = el.get("id", "")
    iban = text_of(el, "iban").replace(" ", "").upper()
    bank = next((b for b in customer.banks if str(b.id) == bank_id), None)
    if bank is None and iban:
        bank = next((b for b in customer.banks if b.iban.replace(" ", "").upper() == iban), None)
    if bank is None:
        bank = Bank(id=ctx.state.next_id(), default=not customer.banks)
        customer.banks.append(bank)
    for name in BANK_FIELDS:
        if el.find(name) is not None:
            setattr(bank, name, text_of(el, name))
    if iban:
        bank.iban = iban
    if el.get("default") == "true":
        for other in customer.banks:
            other.default = other is bank
