"""Creation of organisations, offices (with a standard Dutch chart of accounts, daybooks and
VAT codes), OAuth clients and sales invoices; also the default data a fresh sandbox starts with.

Used by the control API and at start-up; the SOAP side never creates master data except
customers.
"""

from __future__ import annotations

import secrets

from .state import (
    Address,
    Bank,
    CollectMandate,
    Customer,
    Daybook,
    GLAccount,
    OAuthClient,
    Office,
    Organisation,
    SandboxState,
    Transaction,
    TxLine,
    VatCode,
)
from .values import add_days, cents_of, stamp

DEFAULT_ACCOUNTS = [
    GLAccount("1000", "Kas", "BAS"),
    GLAccount("1100", "Bank", "BAS"),
    GLAccount("1105", "Tussenrekening Twikey", "BAS"),
    GLAccount("1110", "Tussenrekening betalingen", "BAS"),
    GLAccount("1300", "Debiteuren", "BAS", control="DEB"),
    GLAccount("1500", "Af te dragen btw hoog", "BAS"),
    GLAccount("1510", "Af te dragen btw laag", "BAS"),
    GLAccount("1600", "Crediteuren", "BAS", control="CRD"),
    GLAccount("2000", "Vraagposten", "BAS"),
    GLAccount("4500", "Bankkosten", "PNL"),
    GLAccount("8000", "Omzet", "PNL"),
    GLAccount("8100", "Omzet laag tarief", "PNL"),
]

DEFAULT_DAYBOOKS = [
    Daybook("MEMO", "Memoriaal", "Memo", "journal"),
    Daybook("VRK", "Verkoopboek", "Verkoop", "sales"),
    Daybook("BNK", "Bank", "Bank", "bank", account="1100"),
    Daybook("KAS", "Kas", "Kas", "cash", account="1000"),
]

DEFAULT_VATCODES = [
    VatCode("VH", "BTW hoog", 210, "1500"),
    VatCode("VL", "BTW laag", 90, "1510"),
    VatCode("VN", "BTW nul", 0, "1500"),
]


def add_client(
    state: SandboxState,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    name: str = "Sandbox client",
    redirect_uris: list[str] | None = None,
    certified: bool = True,
    allow_loopback_redirects: bool = False,
) -> OAuthClient:
    client = OAuthClient(
        client_id=client_id or f"client-{secrets.token_hex(6)}",
        client_secret=client_secret or secrets.token_urlsafe(24),
        name=name,
        redirect_uris=list(redirect_uris or []),
        certified=certified,
        allow_loopback_redirects=allow_loopback_redirects,
    )
    state.clients[client.client_id] = client
    return client


def add_organisation(state: SandboxState, code: str, name: str | None = None) -> Organisation:
    organisation = state.organisations.get(code)
    if organisation is None:
        organisation = Organisation(code=code, name=name or code)
        state.organisations[code] = organisation
    return organisation


def add_office(
    state: SandboxState,
    organisation: str,
    code: str,
    name: str | None = None,
    open_years: list[int] | None = None,
) -> Office:
    if organisation not in state.organisations:
        add_organisation(state, organisation)
    this_year = state.today().year
    office = Office(
        code=code,
        name=name or f"Administratie {code}",
        shortname=(name or code)[:20],
        organisation=organisation,
        open_years=set(open_years or range(this_year - 2, this_year + 2)),
    )
    for account in DEFAULT_ACCOUNTS:
        office.accounts[account.code] = GLAccount(**account.__dict__)
    for daybook in DEFAULT_DAYBOOKS:
        office.daybooks[daybook.code] = Daybook(**daybook.__dict__)
    for vatcode in DEFAULT_VATCODES:
        office.vatcodes[vatcode.code] = VatCode(**vatcode.__dict__)
    state.offices[code] = office
    return office


def add_customer(state: SandboxState, office: Office, data: dict) -> Customer:
    """Create or replace a customer from a control-API dict (flat, friendly field names)."""
    customer = Customer(
        code=str(data["code"]),
        name=data.get("name") or f"Klant {data['code']}",
        shortname=data.get("shortname", ""),
        duedays=int(data.get("duedays", 30)),
        ebillmail=data.get("ebillmail", ""),
        ebilling=bool(data.get("ebilling", False)),
        reminderemail=data.get("reminderemail", ""),
        website=data.get("website", ""),
        paycode=data.get("paycode", ""),
        payavailable=bool(data.get("payavailable", False)),
    )
    customer.modified = state.now()
    customer.addresses.append(
        Address(
            id=state.next_id(),
            name=data.get("name") or customer.name,
            email=data.get("email", ""),
            city=data.get("city", ""),
            postcode=data.get("postcode", ""),
            country=data.get("country", "NL"),
        )
    )
    if data.get("iban"):
        customer.banks.append(
            Bank(
                id=state.next_id(),
                default=True,
                iban=data["iban"],
                biccode=data.get("bic", ""),
                ascription=data.get("ascription", customer.name)[:40],
                accountnumber=data.get("accountnumber", ""),
            )
        )
    if data.get("mandate_id"):
        customer.mandate = CollectMandate(
            id=data["mandate_id"],
            signaturedate=data.get("mandate_signaturedate", ""),
            firstrundate=data.get("mandate_firstrundate", ""),
        )
    office.customers[customer.code] = customer
    return customer


def add_sales_invoice(state: SandboxState, office: Office, data: dict) -> Transaction:
    """Book a sales invoice directly (no validation beyond the basics): a total line on the
    receivables account for the customer and one revenue line, plus VAT if a code is given.

    Raises ValueError with a readable reason for unusable input.
    """
    daybook = data.get("daybook", "VRK")
    if daybook not in office.daybooks or office.daybooks[daybook].kind != "sales":
        raise ValueError(f"daybook {daybook} is not a sales daybook of office {office.code}")
    customer = str(data["customer"])
    if customer not in office.customers:
        raise ValueError(f"customer {customer} does not exist in office {office.code}")
    invoicenumber = str(data["invoice_number"])
    if (office.code, daybook, invoicenumber) in state.invoice_numbers:
        raise ValueError(f"invoice number {invoicenumber} already exists in {daybook}")
    amount_cents = int(data["amount_cents"]) if "amount_cents" in data else cents_of(data["amount"])
    txdate = str(data.get("date") or state.today().strftime("%Y%m%d"))
    period = data.get("period") or f"{txdate[:4]}/{txdate[4:6]}"
    duedate = data.get("due_date") or add_days(txdate, office.customers[customer].duedays)
    status = data.get("status", "final")
    debitcredit = "debit" if amount_cents >= 0 else "credit"
    gross = abs(amount_cents)
    vatcode = data.get("vatcode") or ""
    lines = [
        TxLine(
            id=1,
            type="total",
            dim1=data.get("receivables_account", "1300"),
            dim2=customer,
            debitcredit=debitcredit,
            value_cents=gross,
            invoicenumber=invoicenumber,
            description=data.get("description", "")[:40],
            matchable=True,
            open_cents=amount_cents,
            matchstatus="available",
            duedate=duedate,
        )
    ]
    revenue_dc = "credit" if debitcredit == "debit" else "debit"
    if vatcode and office.vatcodes[vatcode].rate_permille:
        vat = office.vatcodes[vatcode]
        base = round(gross * 1000 / (1000 + vat.rate_permille))
        lines.append(
            TxLine(
                id=2,
                type="detail",
                dim1="8000",
                dim2="",
                debitcredit=revenue_dc,
                value_cents=base,
                vatcode=vatcode,
                invoicenumber=invoicenumber,
            )
        )
        lines.append(
            TxLine(
                id=3,
                type="vat",
                dim1=vat.account,
                dim2="",
                debitcredit=revenue_dc,
                value_cents=gross - base,
                vatcode=vatcode,
                invoicenumber=invoicenumber,
            )
        )
        lines[0].vattotal_cents = gross - base
        lines[0].vatbasetotal_cents = gross - base
    else:
        lines.append(
            TxLine(
                id=2,
                type="detail",
                dim1="8000",
                dim2="",
                debitcredit=revenue_dc,
                value_cents=gross,
                vatcode=vatcode,
                invoicenumber=invoicenumber,
            )
        )
    number = state.next_number(office.code, daybook, int(period[:4]))
    now = stamp(state.now())
    tx = Transaction(
        office=office.code,
        code=daybook,
        number=number,
        status=status,
        date=txdate,
        period=period,
        currency=office.currency,
        lines=lines,
        invoicenumber=invoicenumber,
        duedate=duedate,
        origin="import",
        inputdate=now,
        modificationdate=now,
    )
    state.store_transaction(tx)
    state.invoice_numbers[(office.code, daybook, invoicenumber)] = number
    return tx


def seed_default(state: SandboxState) -> None:
    config = state.config
    add_client(
        state,
        client_id=config.default_client_id,
        client_secret=config.default_client_secret,
        name="Koppel sandbox default client",
        allow_loopback_redirects=True,
    )
    add_organisation(state, config.default_organisation, "Koppel Demo")
    add_office(state, config.default_organisation, config.default_office, "Koppel Demo BV")
