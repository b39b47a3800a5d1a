"""Twikey's response contract for every endpoint the sandbox serves, written from the published
description (development-kit ``docs/openapi.yaml`` 1.0.3 and ``docs/message.md``, its Postman/portman checks and the
SDKs' models; reference §1-8): status codes, body shapes, and the headers that go with them
(``ApiError``/``ApiErrorCode``, ``X-LAST``, ``X-STATE``/``X-COLLECTABLE``, rate limits).

``problems(method, path, status, headers, body)`` lists how one response breaks it (empty when it
conforms); tests run it over every ``/creditor`` response the suite provokes. Models allow extra
fields (Twikey adds fields over time) but insist on the documented ones and their types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


# development-kit docs/message.md: ISODateTime "YYYY-MM-DDThh:mm:ssZ" (UTC); MaxAmt an
# ActiveCurrencyAndAmount without currency in JSON: at least 0, at most 18 digits, 5 after the dot.
ISO_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"
AMOUNT = r"^\d{1,13}(\.\d{1,5})?$"


# ---- bodies ---------------------------------------------------------------------------------
class Login(_Open):
    Authorization: str


class Invited(_Open):
    url: str
    key: str
    mndtId: str


class Signed(_Open):
    MndtId: str
    Msg: str | None = None
    url: str | None = None


class SupplementaryData(_Open):
    Key: str
    Value: Any


class MandateRecord(_Open):  # the `Mndt` object
    MndtId: str
    LclInstrm: Literal["CORE", "B2B", "CREDITCARD"] | None = None
    MaxAmt: str | None = Field(default=None, pattern=AMOUNT)
    DbtrAcct: str | None = None
    SplmtryData: list[SupplementaryData] | None = None


class MandateDetail(_Open):
    Mndt: MandateRecord


class Reason(_Open):  # message.md §3: Orgtr and Rsn, each [1..1]
    Orgtr: dict[str, Any]
    Rsn: str


class MandateMessage(_Open):
    EvtId: int
    EvtTime: str = Field(pattern=ISO_UTC)
    Mndt: MandateRecord | None = None
    OrgnlMndtId: str | None = None
    AmdmntRsn: Reason | None = None
    CxlRsn: Reason | None = None

    @model_validator(mode="after")
    def _kind_has_its_parts(self) -> MandateMessage:
        # message.md: no AmdmntRsn nor CxlRsn = a new mandate (Mndt); an amendment has the
        # reason, the full Mndt and OrgnlMndtId; a cancellation the reason and OrgnlMndtId.
        if self.AmdmntRsn is not None and (self.Mndt is None or not self.OrgnlMndtId):
            raise ValueError("an amendment needs Mndt and OrgnlMndtId")
        if self.CxlRsn is not None and not self.OrgnlMndtId:
            raise ValueError("a cancellation needs OrgnlMndtId")
        if self.AmdmntRsn is None and self.CxlRsn is None and self.Mndt is None:
            raise ValueError("a new mandate needs Mndt")
        return self


class GroupHeader(_Open):
    CreDtTm: str = Field(pattern=ISO_UTC)


class MandateFeed(_Open):
    GrpHdr: GroupHeader
    Messages: list[MandateMessage]


class ContractRow(_Open):
    mandateNumber: str
    state: str


class MandateQuery(_Open):
    Contracts: list[ContractRow]


class TransactionCreated(_Open):
    id: int
    mndtId: str
    amount: float
    msg: str
    ref: str | None
    date: str


class TransactionEntry(TransactionCreated):
    state: Literal["OPEN", "PAID", "ERROR", "UNPAID"]  # portman: "Transaction has state"


class Created(_Open):
    Entries: list[TransactionCreated]


class Transactions(_Open):
    Entries: list[TransactionEntry]


class BulkCreated(_Open):
    batchId: str


class BulkEntry(_Open):  # [NODE] TransactionBulkEntry
    id: int | None
    ref: str | None
    mndtId: str | None
    status: str


BulkStatus = RootModel[list[BulkEntry]]


class Collected(_Open):
    frstMsgId: str | None
    rcurMsgId: str | None


class PaylinkCreated(_Open):
    id: int
    amount: float
    msg: str
    url: str


class Paylink(_Open):
    id: int
    amount: float
    msg: str
    ref: str | None = None
    state: Literal["created", "started", "declined", "paid", "pending", "expired"]


class Paylinks(_Open):
    Links: list[Paylink]


class Empty(_Open):
    """``{}``: nothing documented inside, and nothing required."""


class PaymentMethods(_Open):
    """``GET /payment/methods``: a JSON object whose fields Twikey does not publish."""


class ErrorBody(_Open):
    code: str
    message: str
    extra: str | None = None


# Every code the description (or an official SDK) names; a code outside this list is a sandbox
# invention a client could not have been written for.
KNOWN_CODES = frozenset(
    [
        "err_no_login",
        "err_no_such_ct",
        "err_invalid_ct",
        "err_no_contract",
        "err_invalid_state",
        "err_mandate_invalid_state",
        "err_invalid_date",
        "err_invalid_amount",
        "err_invalid_sepachars",
        "err_invalid_params",
        "err_missing_params",
        "err_msg_missing",
        "err_billing_overdrawn",
        "err_duplicate_ref",
        "err_duplicate_tx",
        "err_not_found",
        "err_no_transaction",
        "err_not_authorised",
        "err_transaction_invalid_action",
        "err_call_in_progress",
        "err_invalid_email",
        "err_invalid_name",
        "err_invalid_iban",
        "err_invalid_bic",
        "err_invalid_country",
        "err_invalid_lang",
        "err_provide_reason",
        "err_no_integration",
    ]
)


# ---- operations -----------------------------------------------------------------------------
NO_BODY = "no body"
Body = type[BaseModel] | str  # a model, or NO_BODY


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # a regular expression over the path below /creditor
    ok: Mapping[int, Body]  # documented success statuses and their bodies
    errors: frozenset[int] = frozenset({400})
    rate_limited: bool = False
    feed: bool = False  # a non-empty page carries X-LAST
    headers: tuple[str, ...] = ()  # further headers a success carries
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", re.compile(self.path + r"/?"))


OPERATIONS = (
    # X-MERCHANT-ID: Twikey's Python SDK (twikey/client.py) reads it from every successful login.
    Operation("POST", "", {200: Login}, headers=("Authorization", "X-MERCHANT-ID")),
    Operation("GET", "", {204: NO_BODY}),
    Operation("POST", "/(invite|prepare)", {200: Invited}),
    Operation("POST", "/sign", {200: Signed}),
    Operation("GET", "/mandate/detail", {200: MandateDetail}, rate_limited=True, headers=("X-STATE", "X-COLLECTABLE")),
    Operation("POST", "/mandate/update", {204: NO_BODY}),
    Operation("DELETE", "/mandate", {200: NO_BODY}),
    Operation("GET", "/mandate/query", {200: MandateQuery}, rate_limited=True),
    Operation("POST", "/mandate/[^/]+/action", {204: NO_BODY}),
    Operation("GET", "/mandate", {200: MandateFeed}, feed=True),
    Operation("POST", "/transaction", {200: Created}, errors=frozenset({400, 409})),
    Operation("PUT", "/transaction", {204: NO_BODY}),
    Operation("DELETE", "/transaction", {204: NO_BODY}),
    Operation("GET", "/transaction", {200: Transactions}, feed=True),
    Operation("GET", "/transaction/detail", {200: Transactions}, rate_limited=True),
    Operation("GET", "/transaction/query", {200: Transactions}, rate_limited=True),
    Operation("POST", "/transaction/action", {204: NO_BODY}),
    Operation("POST", "/transaction/bulk", {200: BulkCreated}),
    Operation("GET", "/transaction/bulk", {200: BulkStatus, 409: NO_BODY}),
    Operation("POST", "/collect", {200: Collected}),
    Operation("POST", "/payment/link", {200: PaylinkCreated}, errors=frozenset({400, 409})),
    Operation("GET", "/payment/link", {200: Paylinks}, rate_limited=True),
    Operation("DELETE", "/payment/link", {200: Empty}),
    Operation("GET", "/payment/link/feed", {200: Paylinks}, feed=True),
    Operation("GET", "/payment/methods", {200: PaymentMethods}),
)


def operation(method: str, path: str) -> Operation | None:
    below = path.removeprefix("/creditor")
    for op in OPERATIONS:
        if op.method == method.upper() and op.pattern.fullmatch(below):
            return op
    return None


# ---- checking -------------------------------------------------------------------------------
def problems(method: str, path: str, status: int, headers: Mapping[str, str], body: bytes) -> list[str]:
    """How one response breaks the contract; ``headers`` looked up case-insensitively."""
    h = {k.lower(): v for k, v in headers.items()}
    if status >= 500:
        return []  # a server fault: nothing is promised about it
    if status == 429:
        return _integer_header(h, "X-Rate-Limit-Retry-After-Seconds")
    op = operation(method, path)
    if op is None:  # an unknown route: Twikey's error shape at least
        return _error(status, h, body, allowed=frozenset({404, 405}))
    if status in op.ok:
        return _success(op, status, h, body)
    if status == 401:
        return _unauthenticated(h, body)
    return _error(status, h, body, allowed=op.errors)


def _success(op: Operation, status: int, h: dict[str, str], body: bytes) -> list[str]:
    found: list[str] = []
    model = op.ok[status]
    if model == NO_BODY:
        if body.strip():
            found.append(f"{status} carries a body: {body[:80]!r}")
    else:
        assert isinstance(model, type)
        found += _valid(model, body)
    if status == 200 and op.rate_limited:
        found += _integer_header(h, "X-Rate-Limit-Remaining")
    for name in op.headers:
        if not h.get(name.lower()):
            found.append(f"header {name} missing")
    if "x-collectable" in h and h["x-collectable"] not in ("true", "false"):
        found.append(f"X-COLLECTABLE is {h['x-collectable']!r}")
    if op.feed and status == 200 and _non_empty_feed(body):
        found += _integer_header(h, "X-LAST")
    return found


def _error(status: int, h: dict[str, str], body: bytes, allowed: frozenset[int]) -> list[str]:
    found = [] if status in allowed else [f"status {status} is not documented here"]
    found += _valid(ErrorBody, body)
    code = _json(body).get("code") if isinstance(_json(body), dict) else None
    for name in ("apierror", "apierrorcode"):
        if h.get(name) != code:
            found.append(f"header {name} is {h.get(name)!r}, body code {code!r}")
    if code is not None and code not in KNOWN_CODES:
        found.append(f"error code {code!r} is documented nowhere")
    return found


def _unauthenticated(h: dict[str, str], body: bytes) -> list[str]:
    # [OAS]: "authentication errors and authorisation errors ... don't have these 2 headers"
    return [f"401 carries {name}" for name in ("apierror", "apierrorcode") if name in h]


def _valid(model: type[BaseModel], body: bytes) -> list[str]:
    try:
        model.model_validate_json(body or b"null")
    except ValidationError as exc:
        return [f"body is no {model.__name__}: {err['loc']} {err['msg']}" for err in exc.errors()[:3]]
    return []


def _integer_header(h: dict[str, str], name: str) -> list[str]:
    value = h.get(name.lower(), "")
    return [] if value.strip().lstrip("-").isdigit() else [f"header {name} is {value!r}, not an integer"]


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        return None


def _non_empty_feed(body: bytes) -> bool:
    data = _json(body)
    return isinstance(data, dict) and any(isinstance(v, list) and v for v in data.values())
