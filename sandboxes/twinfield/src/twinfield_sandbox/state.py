"""In-memory records of the sandbox: OAuth clients and tokens, organisations, offices with their
GL accounts, daybooks, periods and customers, booked transactions and match sets.

Everything is plain dataclasses in dicts hanging off one `SandboxState` object that lives on the
FastAPI app, so two apps in one process never share anything. Money is integer cents, signed
(debit positive, credit negative) wherever a line's amount is stored.
"""

from __future__ import annotations

import itertools
import random
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .config import SandboxConfig

# ---------------------------------------------------------------------------------------------
# OAuth


@dataclass
class OAuthClient:
    client_id: str
    client_secret: str
    name: str
    redirect_uris: list[str]
    # Twinfield's fair-use budgets differ for certified and uncertified clients (reference §7).
    certified: bool = True
    # The default client accepts any loopback redirect, so demos need no registration step.
    allow_loopback_redirects: bool = False


@dataclass
class AuthCode:
    code: str
    client_id: str
    organisation: str
    user: str
    redirect_uri: str | None
    scope: list[str]
    nonce: str | None
    expires_at: float
    used: bool = False


@dataclass
class RefreshToken:
    token: str
    client_id: str
    organisation: str
    user: str
    scope: list[str]
    revoked: bool = False


@dataclass
class AccessToken:
    token: str
    client_id: str
    organisation: str
    user: str
    scope: list[str]
    issued_at: float
    expires_at: float
    revoked: bool = False


# ---------------------------------------------------------------------------------------------
# Master data


@dataclass
class Organisation:
    code: str
    name: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    users: list[str] = field(default_factory=lambda: ["APIUSER"])


@dataclass
class GLAccount:
    code: str
    name: str
    # "BAS" balance sheet or "PNL" profit and loss.
    type: str
    # "DEB"/"CRD" marks a receivables/payables control account: lines on it need a level-2
    # relation and become matchable open items.
    control: str | None = None


@dataclass
class Daybook:
    code: str
    name: str
    shortname: str
    # "journal" (MEMO-like: detail and vat lines), "sales" (VRK-like: one total line on the
    # receivables account), "bank" or "cash" (BNK/KAS-like: one total line on the daybook's own
    # bank or cash account, statement number and start/close balance in the header).
    kind: str
    account: str = ""  # bank and cash: the GL account of the daybook's total line


@dataclass
class VatCode:
    code: str
    name: str
    rate_permille: int  # 210 = 21 %
    account: str


@dataclass
class Bank:
    id: int
    default: bool = False
    ascription: str = ""
    accountnumber: str = ""
    iban: str = ""
    biccode: str = ""
    bankname: str = ""
    city: str = ""
    country: str = ""
    natbiccode: str = ""
    postcode: str = ""
    state: str = ""


@dataclass
class Address:
    id: int
    type: str = "invoice"
    default: bool = True
    name: str = ""
    country: str = "NL"
    city: str = ""
    postcode: str = ""
    telephone: str = ""
    email: str = ""
    contact: str = ""
    field1: str = ""
    field2: str = ""
    field3: str = ""


@dataclass
class CollectMandate:
    id: str = ""
    signaturedate: str = ""  # YYYYMMDD
    firstrundate: str = ""  # YYYYMMDD


@dataclass
class Customer:
    code: str
    name: str
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    shortname: str = ""
    status: str = "active"
    website: str = ""
    duedays: int = 30
    ebilling: bool = False
    ebillmail: str = ""
    payavailable: bool = False
    paycode: str = ""
    collectionschema: str = "core"
    mandate: CollectMandate = field(default_factory=CollectMandate)
    addresses: list[Address] = field(default_factory=list)
    banks: list[Bank] = field(default_factory=list)
    reminderemail: str = ""
    modified: float = field(default_factory=time.time)

    @property
    def email(self) -> str:
        for address in self.addresses:
            if address.default and address.email:
                return address.email
        return self.ebillmail or self.reminderemail


@dataclass
class Office:
    code: str
    name: str
    organisation: str
    shortname: str = ""
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    currency: str = "EUR"
    open_years: set[int] = field(default_factory=set)
    # Periods ("YYYY/MM") of an open year that are closed for posting (Twinfield's period settings:
    # a period can be opened and closed, developers.twinfield.com miscellaneous/periods).
    closed_periods: set[str] = field(default_factory=set)
    accounts: dict[str, GLAccount] = field(default_factory=dict)
    daybooks: dict[str, Daybook] = field(default_factory=dict)
    vatcodes: dict[str, VatCode] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Bookings


@dataclass
class LineMatch:
    """One match set as seen from one line (the `<matches>` block on a read)."""

    matchnumber: int
    matchdate: str
    value_cents: int  # signed part of this line consumed by the set
    partners: list[tuple[str, int, int, int]]  # (code, number, line, signed value)


@dataclass
class TxLine:
    id: int
    type: str  # total | detail | vat
    dim1: str
    dim2: str
    debitcredit: str
    value_cents: int  # always positive, as on the wire
    description: str = ""
    invoicenumber: str = ""
    vatcode: str = ""
    vatvalue_cents: int | None = None
    vattotal_cents: int | None = None
    vatbasetotal_cents: int | None = None
    matchable: bool = False
    open_cents: int = 0  # signed
    matchstatus: str = "notmatchable"
    matchnumber: int | None = None
    matchdate: str = ""
    duedate: str = ""
    matches: list[LineMatch] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)  # dim3..dim6, freechar, comment

    @property
    def signed_cents(self) -> int:
        return self.value_cents if self.debitcredit == "debit" else -self.value_cents


@dataclass
class Transaction:
    office: str
    code: str
    number: int
    status: str  # temporary | final
    date: str  # YYYYMMDD
    period: str  # YYYY/PP
    currency: str
    lines: list[TxLine]
    raisewarning: str = "true"
    invoicenumber: str = ""
    paymentreference: str = ""
    duedate: str = ""
    freetext: dict[str, str] = field(default_factory=dict)
    statement: dict[str, str] = field(default_factory=dict)  # bank/cash: statementnumber, start/closevalue
    origin: str = "import"
    user: str = "APIUSER"
    client_id: str = ""
    inputdate: str = ""
    modificationdate: str = ""

    def line(self, line_id: int) -> TxLine | None:
        for line in self.lines:
            if line.id == line_id:
                return line
        return None


@dataclass
class MatchSet:
    office: str
    customer: str
    matchnumber: int
    matchcode: str
    matchdate: str
    lines: list[dict]  # {code, number, line, matchvalue, writeoff}
    client_id: str = ""
    # When the sandbox applied the match: the machine's wall clock (not the movable sandbox
    # clock), so benchmarks can compare it with their own time.time().
    matched_at: float = field(default_factory=time.time)


# ---------------------------------------------------------------------------------------------


class SandboxState:
    """All mutable state of one sandbox instance."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        # Tests move time forward (token expiry, credit windows) through this offset instead of
        # sleeping.
        self.clock_offset = 0.0
        self.rng = random.Random(config.seed)
        self.jwt_secret = secrets.token_bytes(32)
        self.clients: dict[str, OAuthClient] = {}
        self.auth_codes: dict[str, AuthCode] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.organisations: dict[str, Organisation] = {}
        # (organisation, user) -> message language, as a Twinfield user's own setting
        self.user_languages: dict[tuple[str, str], str] = {}
        self.offices: dict[str, Office] = {}
        # office -> daybook -> number -> Transaction
        self.transactions: dict[str, dict[str, dict[int, Transaction]]] = {}
        # (office, daybook, year) -> last sequence number used
        self.sequences: dict[tuple[str, str, int], int] = {}
        # (office, daybook, invoicenumber) -> transaction number; sales invoice numbers are unique
        self.invoice_numbers: dict[tuple[str, str, str], int] = {}
        self.match_sets: dict[str, list[MatchSet]] = {}
        # Browse indexes of customer (open-item) lines, keyed (daybook, number, line id). Browsing
        # by invoice number or customer must stay cheap with tens of thousands of invoices.
        self.customer_lines: dict[str, dict[tuple[str, int, int], None]] = {}
        self.lines_by_invoice: dict[tuple[str, str], dict[tuple[str, int, int], None]] = {}
        self.lines_by_customer: dict[tuple[str, str], dict[tuple[str, int, int], None]] = {}
        # (office, customer) -> last match number
        self.match_numbers: dict[tuple[str, str], int] = {}
        # office -> electronic bank statements imported; (office, daybook) -> running balance
        self.statements: dict[str, list[Any]] = {}
        self.statement_balances: dict[tuple[str, str], int] = {}
        self._ids = itertools.count(1000)

    def now(self) -> float:
        return time.time() + self.clock_offset

    def today(self) -> date:
        return date.fromtimestamp(self.now())

    def next_id(self) -> int:
        return next(self._ids)

    # -- lookups --------------------------------------------------------------------------------

    def office_for(self, code_or_id: str) -> Office | None:
        office = self.offices.get(code_or_id)
        if office is not None:
            return office
        for candidate in self.offices.values():
            if candidate.id.lower() == code_or_id.lower():
                return candidate
        return None

    def offices_of(self, organisation: str) -> list[Office]:
        return [o for o in self.offices.values() if o.organisation == organisation]

    def daybook_transactions(self, office: str, code: str) -> dict[int, Transaction]:
        return self.transactions.setdefault(office, {}).setdefault(code, {})

    def store_transaction(self, tx: Transaction) -> None:
        """Record a new or updated transaction and index its customer lines. Index entries of
        replaced lines may linger; readers re-check every candidate line."""
        self.daybook_transactions(tx.office, tx.code)[tx.number] = tx
        for line in tx.lines:
            if not line.matchable:
                continue
            key = (tx.code, tx.number, line.id)
            self.customer_lines.setdefault(tx.office, {})[key] = None
            if line.invoicenumber:
                self.lines_by_invoice.setdefault((tx.office, line.invoicenumber.lower()), {})[key] = None
            self.lines_by_customer.setdefault((tx.office, line.dim2.lower()), {})[key] = None

    def find_transaction(self, office: str, code: str, number: int) -> Transaction | None:
        return self.transactions.get(office, {}).get(code, {}).get(number)

    def next_number(self, office: str, code: str, year: int) -> int:
        key = (office, code, year)
        self.sequences[key] = self.sequences.get(key, 0) + 1
        # Observed pattern: year followed by a five-digit sequence (reference §3.4).
        return year * 100000 + self.sequences[key]

    def next_matchnumber(self, office: str, customer: str) -> int:
        key = (office, customer)
        self.match_numbers[key] = self.match_numbers.get(key, 0) + 1
        return self.match_numbers[key]
