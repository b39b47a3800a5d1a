"""The control API under `/_sandbox` (JSON): set up clients, organisations, offices, customers
and open invoices; hand out refresh tokens without a browser; revoke consent; expire tokens;
move the clock; inject faults; read back what was booked and the credits spent; reset.

This is not part of Twinfield: tests, benchmarks and the demo use it to arrange and inspect.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from . import seed
from .limits import LimitConfig
from .sandbox import Sandbox, get_sandbox
from .soap import PATH as SOAP_PATH
from .state import Customer, Daybook, GLAccount, Office, Transaction
from .tokens import issue_access_token, issue_refresh_token, revoke_consent
from .values import fmt_cents, parse_period

router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])

DEFAULT_SCOPE = ["openid", "offline_access", "twf.organisation", "twf.organisationUser", "twf.user"]


def _office(sandbox: Sandbox, code: str) -> Office:
    office = sandbox.state.offices.get(code)
    if office is None:
        raise HTTPException(404, f"office {code} does not exist")
    return office


# -- info, reset, config, clock -------------------------------------------------------------------


@router.get("/info")
async def info(request: Request) -> dict:
    sandbox = get_sandbox(request)
    base = sandbox.base_url(request)
    config = sandbox.config
    return {
        "login_url": base,
        "cluster_url": base,
        "authorize_url": base + "/auth/authentication/connect/authorize",
        "token_url": base + "/auth/authentication/connect/token",
        "accesstokenvalidation_url": base + "/auth/authentication/connect/accesstokenvalidation",
        "processxml_url": base + SOAP_PATH,
        "wsdl_url": base + SOAP_PATH + "?wsdl",
        "default_client_id": config.default_client_id if config.default_client_id in sandbox.state.clients else None,
        "default_client_secret": (
            config.default_client_secret if config.default_client_id in sandbox.state.clients else None
        ),
        "organisations": {
            code: [office.code for office in sandbox.state.offices_of(code)] for code in sandbox.state.organisations
        },
    }


class ResetBody(BaseModel):
    seed_default: bool = True


@router.post("/reset")
async def reset(request: Request, body: ResetBody | None = None) -> dict:
    sandbox = get_sandbox(request)
    sandbox.reset(seed=(body or ResetBody()).seed_default)
    return {"reset": True}


class ConfigPatch(BaseModel):
    latency_seconds: float | None = None
    access_token_seconds: int | None = None
    limits: dict[str, Any] | None = None


@router.get("/config")
async def get_config(request: Request) -> dict:
    config = get_sandbox(request).config
    return {
        "latency_seconds": config.latency_seconds,
        "access_token_seconds": config.access_token_seconds,
        "limits": dataclasses.asdict(config.limits),
    }


@router.patch("/config")
async def patch_config(request: Request, body: ConfigPatch) -> dict:
    sandbox = get_sandbox(request)
    config = sandbox.config
    if body.latency_seconds is not None:
        config.latency_seconds = body.latency_seconds
    if body.access_token_seconds is not None:
        config.access_token_seconds = body.access_token_seconds
    if body.limits:
        known = {f.name for f in dataclasses.fields(LimitConfig)}
        unknown = set(body.limits) - known
        if unknown:
            raise HTTPException(422, f"unknown limit settings: {', '.join(sorted(unknown))}")
        for key, value in body.limits.items():
            setattr(config.limits, key, value)
        # New budgets start from an empty window, so a test gets exactly what it set.
        sandbox.limiter.reset_windows()
    return await get_config(request)


class ClockBody(BaseModel):
    seconds: float


@router.post("/clock/advance")
async def advance_clock(request: Request, body: ClockBody) -> dict:
    state = get_sandbox(request).state
    state.clock_offset += body.seconds
    return {"clock_offset": state.clock_offset, "now": state.now()}


# -- clients, organisations, offices --------------------------------------------------------------


class ClientBody(BaseModel):
    client_id: str | None = None
    client_secret: str | None = None
    name: str = "Sandbox client"
    redirect_uris: list[str] = Field(default_factory=list)
    certified: bool = True
    allow_loopback_redirects: bool = False


@router.post("/clients", status_code=201)
async def create_client(request: Request, body: ClientBody) -> dict:
    client = seed.add_client(get_sandbox(request).state, **body.model_dump())
    return dataclasses.asdict(client)


@router.get("/clients")
async def list_clients(request: Request) -> list[dict]:
    return [dataclasses.asdict(client) for client in get_sandbox(request).state.clients.values()]


class OfficeBody(BaseModel):
    code: str
    name: str | None = None
    open_years: list[int] | None = None


class OrganisationBody(BaseModel):
    code: str
    name: str | None = None
    offices: list[OfficeBody] = Field(default_factory=list)


@router.post("/organisations", status_code=201)
async def create_organisation(request: Request, body: OrganisationBody) -> dict:
    state = get_sandbox(request).state
    organisation = seed.add_organisation(state, body.code, body.name)
    for office in body.offices:
        if office.code in state.offices:
            raise HTTPException(409, f"office {office.code} already exists")
        seed.add_office(state, body.code, office.code, office.name, office.open_years)
    return {
        "code": organisation.code,
        "name": organisation.name,
        "id": organisation.id,
        "offices": [o.code for o in state.offices_of(organisation.code)],
    }


@router.get("/organisations")
async def list_organisations(request: Request) -> list[dict]:
    state = get_sandbox(request).state
    return [
        {"code": o.code, "name": o.name, "id": o.id, "offices": [f.code for f in state.offices_of(o.code)]}
        for o in state.organisations.values()
    ]


class NewOfficeBody(OfficeBody):
    organisation: str


@router.post("/offices", status_code=201)
async def create_office(request: Request, body: NewOfficeBody) -> dict:
    state = get_sandbox(request).state
    if body.code in state.offices:
        raise HTTPException(409, f"office {body.code} already exists")
    office = seed.add_office(state, body.organisation, body.code, body.name, body.open_years)
    return _office_json(office)


@router.get("/offices/{office_code}")
async def get_office(request: Request, office_code: str) -> dict:
    return _office_json(_office(get_sandbox(request), office_code))


def _office_json(office: Office) -> dict:
    return {
        "code": office.code,
        "id": office.id,
        "name": office.name,
        "organisation": office.organisation,
        "currency": office.currency,
        "open_years": sorted(office.open_years),
        "closed_periods": sorted(office.closed_periods),
        "accounts": [dataclasses.asdict(a) for a in office.accounts.values()],
        "daybooks": [dataclasses.asdict(d) for d in office.daybooks.values()],
        "vatcodes": [dataclasses.asdict(v) for v in office.vatcodes.values()],
        "customers": len(office.customers),
    }


class AccountBody(BaseModel):
    code: str
    name: str
    type: str = "BAS"
    control: str | None = None


@router.post("/offices/{office_code}/accounts", status_code=201)
async def add_account(request: Request, office_code: str, body: AccountBody) -> dict:
    office = _office(get_sandbox(request), office_code)
    office.accounts[body.code] = GLAccount(**body.model_dump())
    return body.model_dump()


class DaybookBody(BaseModel):
    code: str
    name: str
    shortname: str = ""
    kind: str = Field(pattern="^(journal|sales|bank|cash)$")
    account: str = Field("", description="bank and cash: the GL account of the total line")


@router.post("/offices/{office_code}/daybooks", status_code=201)
async def add_daybook(request: Request, office_code: str, body: DaybookBody) -> dict:
    office = _office(get_sandbox(request), office_code)
    if body.kind in ("bank", "cash") and body.account not in office.accounts:
        raise HTTPException(422, f"a {body.kind} daybook needs an existing GL account, not {body.account!r}")
    office.daybooks[body.code] = Daybook(body.code, body.name, body.shortname or body.name, body.kind, body.account)
    return body.model_dump()


class PeriodsBody(BaseModel):
    close: list[str] = Field(default_factory=list, description="periods YYYY/MM to close for posting")
    open: list[str] = Field(default_factory=list, description="periods YYYY/MM to open again")


@router.post("/offices/{office_code}/periods")
async def set_periods(request: Request, office_code: str, body: PeriodsBody) -> dict:
    """Close or reopen periods of the office (a transaction in a closed period is refused)."""
    office = _office(get_sandbox(request), office_code)
    to_open, to_close = _periods(body.open), _periods(body.close)
    office.closed_periods.difference_update(to_open)
    office.closed_periods.update(to_close)
    return {"office": office.code, "closed_periods": sorted(office.closed_periods)}


def _periods(texts: list[str]) -> set[str]:
    found = set()
    for text in texts:
        parts = parse_period(text)
        if parts is None or not 1 <= parts[1] <= 12:
            raise HTTPException(422, f"period {text!r} is not YYYY/MM")
        found.add(f"{parts[0]}/{parts[1]:02d}")
    return found


# -- customers and invoices -----------------------------------------------------------------------


class CustomersBody(BaseModel):
    customers: list[dict[str, Any]]


@router.post("/offices/{office_code}/customers", status_code=201)
async def seed_customers(request: Request, office_code: str, body: CustomersBody) -> dict:
    sandbox = get_sandbox(request)
    office = _office(sandbox, office_code)
    for item in body.customers:
        if "code" not in item:
            raise HTTPException(422, "every customer needs a code")
    for item in body.customers:
        seed.add_customer(sandbox.state, office, item)
    return {"created": len(body.customers)}


@router.get("/offices/{office_code}/customers")
async def list_customers(request: Request, office_code: str) -> list[dict]:
    office = _office(get_sandbox(request), office_code)
    return [customer_json(c) for c in office.customers.values()]


@router.get("/offices/{office_code}/customers/{code}")
async def get_customer(request: Request, office_code: str, code: str) -> dict:
    office = _office(get_sandbox(request), office_code)
    if code not in office.customers:
        raise HTTPException(404, f"customer {code} does not exist")
    return customer_json(office.customers[code])


def customer_json(customer: Customer) -> dict:
    data = dataclasses.asdict(customer)
    data["email"] = customer.email
    return data


class InvoicesBody(BaseModel):
    invoices: list[dict[str, Any]]


@router.post("/offices/{office_code}/invoices", status_code=201)
async def seed_invoices(request: Request, office_code: str, body: InvoicesBody) -> dict:
    """Each invoice: customer, invoice_number, amount (or amount_cents; negative = credit note),
    optional date (YYYYMMDD), period, due_date, status (final|temporary), vatcode, daybook."""
    sandbox = get_sandbox(request)
    office = _office(sandbox, office_code)
    created: list[dict[str, Any]] = []
    for index, item in enumerate(body.invoices):
        try:
            tx = seed.add_sales_invoice(sandbox.state, office, item)
        except (KeyError, ValueError) as exc:
            raise HTTPException(422, f"invoice {index} ({len(created)} created before it): {exc}") from None
        created.append({"invoice_number": tx.invoicenumber, "code": tx.code, "number": tx.number, "line": 1})
    return {"created": created}


# -- bookings -------------------------------------------------------------------------------------


@router.get("/offices/{office_code}/transactions")
async def list_transactions(
    request: Request, office_code: str, daybook: str | None = None, client_id: str | None = None
) -> list[dict]:
    sandbox = get_sandbox(request)
    _office(sandbox, office_code)
    result = []
    for code, books in sandbox.state.transactions.get(office_code, {}).items():
        if daybook and code != daybook:
            continue
        for tx in books.values():
            if client_id and tx.client_id != client_id:
                continue
            result.append(transaction_json(tx))
    return result


@router.get("/offices/{office_code}/transactions/{daybook}/{number}")
async def get_transaction(request: Request, office_code: str, daybook: str, number: int) -> dict:
    tx = get_sandbox(request).state.find_transaction(office_code, daybook, number)
    if tx is None:
        raise HTTPException(404, f"transaction {daybook} {number} does not exist in {office_code}")
    return transaction_json(tx)


def transaction_json(tx: Transaction) -> dict:
    return {
        "office": tx.office,
        "code": tx.code,
        "number": tx.number,
        "status": tx.status,
        "date": tx.date,
        "period": tx.period,
        "currency": tx.currency,
        "invoicenumber": tx.invoicenumber,
        "duedate": tx.duedate,
        "freetext": tx.freetext,
        "client_id": tx.client_id,
        "lines": [
            {
                "id": line.id,
                "type": line.type,
                "dim1": line.dim1,
                "dim2": line.dim2,
                "debitcredit": line.debitcredit,
                "value": fmt_cents(line.value_cents),
                "description": line.description,
                "invoicenumber": line.invoicenumber,
                "vatcode": line.vatcode,
                "matchstatus": line.matchstatus,
                "open": fmt_cents(line.open_cents) if line.matchable else None,
                "matchnumber": line.matchnumber,
                "matchdate": line.matchdate,
            }
            for line in tx.lines
        ],
    }


@router.get("/offices/{office_code}/matches")
async def list_matches(request: Request, office_code: str) -> list[dict]:
    sandbox = get_sandbox(request)
    _office(sandbox, office_code)
    return [dataclasses.asdict(m) for m in sandbox.state.match_sets.get(office_code, [])]


# -- tokens and consent ---------------------------------------------------------------------------


class TokenBody(BaseModel):
    client_id: str
    organisation: str
    user: str = "APIUSER"
    scope: list[str] = Field(default_factory=lambda: list(DEFAULT_SCOPE))
    language: str | None = Field(None, pattern="^(nl|en)$", description="the user's message language")


@router.post("/tokens", status_code=201)
async def issue_tokens(request: Request, body: TokenBody) -> dict:
    """A refresh token (and a first access token) as if the consent flow had run."""
    sandbox = get_sandbox(request)
    state = sandbox.state
    if body.client_id not in state.clients:
        raise HTTPException(404, f"client {body.client_id} does not exist")
    if body.organisation not in state.organisations:
        raise HTTPException(404, f"organisation {body.organisation} does not exist")
    if body.language is not None:
        state.user_languages[(body.organisation, body.user)] = body.language
    refresh = issue_refresh_token(
        state, client_id=body.client_id, organisation=body.organisation, user=body.user, scope=body.scope
    )
    access = issue_access_token(
        state,
        client_id=body.client_id,
        organisation=body.organisation,
        user=body.user,
        scope=body.scope,
        base_url=sandbox.base_url(request),
    )
    return {
        "refresh_token": refresh.token,
        "access_token": access.token,
        "expires_in": sandbox.config.access_token_seconds,
        "cluster_url": sandbox.base_url(request),
        "offices": [o.code for o in state.offices_of(body.organisation)],
    }


class ExpireBody(BaseModel):
    client_id: str | None = None


@router.post("/tokens/expire")
async def expire_tokens(request: Request, body: ExpireBody | None = None) -> dict:
    """Expire every live access token (of one client): the next SOAP call gets fault 354."""
    state = get_sandbox(request).state
    client_id = body.client_id if body else None
    count = 0
    for token in state.access_tokens.values():
        if (client_id is None or token.client_id == client_id) and token.expires_at > state.now():
            token.expires_at = state.now()
            count += 1
    return {"expired": count}


class RevokeBody(BaseModel):
    client_id: str
    organisation: str | None = None


@router.post("/consent/revoke")
async def revoke(request: Request, body: RevokeBody) -> dict:
    return {"revoked": revoke_consent(get_sandbox(request).state, body.client_id, body.organisation)}


# -- faults and credits ---------------------------------------------------------------------------


class FaultBody(BaseModel):
    operation: str = "*"
    kind: str
    rate: float = 1.0
    count: int | None = None
    when: str = "before"
    status: int = 500
    delay_seconds: float = 30.0
    retry_after: int = 30
    client_id: str | None = None


@router.post("/faults", status_code=201)
async def add_fault(request: Request, body: FaultBody) -> dict:
    try:
        return get_sandbox(request).faults.add(**body.model_dump()).as_dict()
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/faults")
async def list_faults(request: Request) -> list[dict]:
    return [rule.as_dict() for rule in get_sandbox(request).faults.rules]


@router.delete("/faults")
async def clear_faults(request: Request) -> dict:
    get_sandbox(request).faults.clear()
    return {"cleared": True}


@router.delete("/faults/{rule_id}")
async def delete_fault(request: Request, rule_id: str) -> dict:
    if not get_sandbox(request).faults.remove(rule_id):
        raise HTTPException(404, f"fault {rule_id} does not exist")
    return {"deleted": rule_id}


@router.get("/credits")
async def credits(request: Request) -> dict:
    return get_sandbox(request).limiter.report()


@router.post("/credits/reset")
async def reset_credits(request: Request) -> dict:
    limiter = get_sandbox(request).limiter
    limiter.reset_ledgers()
    limiter.reset_windows()
    return {"reset": True}
