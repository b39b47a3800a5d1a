"""Mandates: invite, sign, detail, update (incl. suspend/resume), cancel/delete, query, and the
lifecycle steps the debtor and the debtor's bank take (used by the control API too).

Lifecycle: PREPARED -> SIGNED (CORE, or B2B without bank signature) or
PREPARED -> SIGNED_PENDING_DEBTOR_BANK -> SIGNED | CANCELLED (B2B); SIGNED <-> SUSPENDED;
SIGNED/SUSPENDED -> CANCELLED. A prepared mandate that is deleted disappears.
Feed messages exist only for mandates that were signed (new / update / cancel).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from .amounts import parse_amount
from .auth import authenticate, check_rate_limit
from .deps import hooks_of, state_of
from .errors import ApiError, read_params, truthy
from .render import day, mandate_json
from .state import (
    CANCELLED,
    PENDING_BANK,
    PREPARED,
    SIGNED,
    SUSPENDED,
    Creditor,
    FeedEvent,
    Mandate,
    SandboxState,
    snapshot_mandate,
)
from .webhooks import WebhookDispatcher

router = APIRouter(prefix="/creditor")

# /sign methods that complete at once; the others need the debtor (a url is returned instead).
# [OAS] /sign: "bancontact, bcmc, ideal, sms, itsme, paper, import, digisign, emachtiging, idin, auto".
IMMEDIATE_METHODS = {"paper", "import", "digisign", "auto"}
SIGN_METHODS = IMMEDIATE_METHODS | {"bancontact", "bcmc", "ideal", "sms", "itsme", "emachtiging", "idin"}
BIC_RE = re.compile(r"^[A-Z]{6}[A-Z0-9]{2}([A-Z0-9]{3})?$")
# SEPA mandate reference (UMR): letters, digits, / - ? : ( ) . , ' + and space; none of the
# special characters first or last.
UMR_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9/?:().,'+ -]*[A-Za-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# Form field -> Mandate attribute. Both firstname and firstName: the Python SDK HEAD sends camelCase.
FIELD_MAP = {
    "firstname": "first_name",
    "firstName": "first_name",
    "lastname": "last_name",
    "lastName": "last_name",
    "companyName": "company_name",
    "coc": "coc",
    "vatno": "vatno",
    "email": "email",
    "mobile": "mobile",
    "customerNumber": "customer_number",
    "address": "address",
    "city": "city",
    "zip": "zip",
    "country": "country",
    "l": "language",
    "iban": "iban",
    "bic": "bic",
    "contractNumber": "contract_number",
}


def valid_iban(iban: str) -> bool:
    iban = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}", iban):
        return False
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


def clean_fields(params: dict[str, str]) -> dict[str, str]:
    """Mandate attributes from form fields, validated (400 err_invalid_params on bad data)."""
    values: dict[str, str] = {}
    for name, attr in FIELD_MAP.items():
        # An empty field is "not given": an update with iban="" must not erase the IBAN.
        if params.get(name, "").strip():
            values[attr] = params[name].strip()
    if values.get("iban"):
        values["iban"] = values["iban"].replace(" ", "").upper()
        if not valid_iban(values["iban"]):
            raise ApiError("err_invalid_params", message="Invalid IBAN", extra="iban")
    if values.get("bic"):
        values["bic"] = values["bic"].replace(" ", "").upper()
        if not BIC_RE.match(values["bic"]):
            raise ApiError("err_invalid_params", message="Invalid BIC", extra="bic")
    if values.get("email") and not EMAIL_RE.match(values["email"]):
        raise ApiError("err_invalid_email", extra="email")
    if values.get("country"):
        values["country"] = values["country"].upper()
        if not re.fullmatch(r"[A-Z]{2}", values["country"]):
            raise ApiError("err_invalid_country", extra="country")
    if values.get("language") and values["language"] not in LANGUAGES:
        raise ApiError("err_invalid_lang", extra="l")
    # [OAS] invite/sign/update: "International format +32499123445".
    if values.get("mobile") and not re.fullmatch(r"\+[1-9][0-9]{6,14}", values["mobile"]):
        raise ApiError("err_invalid_params", message="Mobile number not in international format", extra="mobile")
    return values


# [OAS] /invite: "Language (en/fr/nl/de/pt/es/it)"; subscriptionRecurrence "1w/1m/2m/3m/6m/12m";
# ed "Link expiry (epoch ms, max 12 months)". The sandbox does not act on subscriptions, first
# payments or link expiry, but it refuses them malformed as the description formats them.
LANGUAGES = frozenset({"en", "fr", "nl", "de", "pt", "es", "it"})
RECURRENCES = frozenset({"1w", "1m", "2m", "3m", "6m", "12m"})
MAX_LINK_LIFE_SECONDS = 366 * 86400


def _check_invite_options(state: SandboxState, params: dict[str, str]) -> None:
    if params.get("ed"):
        if not params["ed"].strip().isdigit():
            raise ApiError("err_invalid_date", message="Link expiry must be epoch milliseconds", extra="ed")
        if int(params["ed"]) / 1000 > state.clock.now() + MAX_LINK_LIFE_SECONDS:
            raise ApiError("err_invalid_date", message="Link expiry more than 12 months ahead", extra="ed")
    for name in ("reminderDays", "subscriptionStopAfter"):
        if params.get(name) and not params[name].strip().isdigit():
            raise ApiError("err_invalid_params", extra=name)
    for name in ("transactionAmount", "subscriptionAmount"):
        if params.get(name):
            parse_amount(params[name], name)
    if params.get("subscriptionRecurrence") and params["subscriptionRecurrence"] not in RECURRENCES:
        raise ApiError("err_invalid_params", extra="subscriptionRecurrence")
    if params.get("subscriptionStart"):
        try:
            date.fromisoformat(params["subscriptionStart"].strip())
        except ValueError:
            raise ApiError("err_invalid_date", extra="subscriptionStart") from None


# ---- feed + webhook helpers --------------------------------------------------------------------
def _feed(
    state: SandboxState,
    creditor: Creditor,
    m: Mandate,
    kind: str,
    reason: str = "",
    email: str = "",
    name: str = "",
) -> None:
    creditor.mandate_feed.append(
        FeedEvent(
            seq=state.next_seq(),
            at=state.clock.now(),
            kind=kind,
            obj=snapshot_mandate(m),  # the mandate as it was at this moment
            reason=reason,
            originator_email=email,
            originator_name=name,
        )
    )


# ---- lifecycle steps -----------------------------------------------------------------------------
def new_mandate(state: SandboxState, creditor: Creditor, ct: int, fields: dict[str, str], mndt_id: str = "") -> Mandate:
    if not mndt_id:
        while True:
            creditor.mandate_counter += 1
            mndt_id = f"{creditor.prefix}{creditor.mandate_counter:07d}"
            if mndt_id not in creditor.mandates:
                break
    m = Mandate(
        contract_id=state.next_contract_id(),
        mndt_id=mndt_id,
        api_key=creditor.api_key,
        ct=ct,
        scheme=creditor.templates[ct],
        state=PREPARED,
        key=secrets.token_urlsafe(6),
        created_at=state.clock.now(),
    )
    for attr, value in fields.items():
        setattr(m, attr, value)
    if not m.contract_number:
        m.contract_number = f"C-{m.contract_id}"
    creditor.mandates[mndt_id] = m
    return m


def sign(
    state: SandboxState,
    hooks: WebhookDispatcher,
    creditor: Creditor,
    m: Mandate,
    method: str,
    iban: str = "",
    bic: str = "",
    place: str = "",
    signer: str = "",
    sign_date: float | None = None,
    bank_signature: bool | None = None,
) -> None:
    if m.state != PREPARED:
        raise ApiError("err_invalid_state", message=f"Mandate is {m.state}, not PREPARED")
    fields = clean_fields({"iban": iban, "bic": bic})
    iban, bic = fields.get("iban") or m.iban, fields.get("bic") or m.bic
    if not iban:
        raise ApiError("err_missing_params", message="An IBAN is needed to sign", extra="iban")
    m.iban, m.bic = iban, bic
    m.sign_method, m.sign_place, m.signer = method, place, signer
    m.sign_date = sign_date if sign_date is not None else state.clock.now()
    if bank_signature is not None:
        m.bank_signature = bank_signature
    if m.scheme == "B2B" and m.bank_signature:
        m.state = PENDING_BANK
        hooks.contract(creditor, m.mndt_id, "Sign", PENDING_BANK)
        return
    m.state = SIGNED
    _feed(state, creditor, m, "new")
    hooks.contract(creditor, m.mndt_id, "Sign", SIGNED)


def bank_decision(
    state: SandboxState,
    hooks: WebhookDispatcher,
    creditor: Creditor,
    m: Mandate,
    accept: bool,
    reason: str = "",
) -> None:
    if m.state != PENDING_BANK:
        raise ApiError("err_invalid_state", message=f"Mandate is {m.state}, not waiting for the bank")
    if accept:
        m.state = SIGNED
        _feed(state, creditor, m, "new")
        hooks.contract(creditor, m.mndt_id, "AcceptedBank", SIGNED)
    else:
        m.state = CANCELLED
        m.cancel_reason = reason or "Rejected by debtor bank"
        _feed(state, creditor, m, "cancel", m.cancel_reason, email=m.email, name=m.debtor_name)
        hooks.contract(creditor, m.mndt_id, "RejectBank", CANCELLED)


def refuse(hooks: WebhookDispatcher, creditor: Creditor, m: Mandate, reason: str = "refused") -> None:
    if m.state != PREPARED:
        raise ApiError("err_invalid_state", message=f"Mandate is {m.state}, not PREPARED")
    m.state = CANCELLED
    m.cancel_reason = reason
    hooks.contract(creditor, m.mndt_id, "Invite", CANCELLED, reason=reason)


def set_max_amount(
    state: SandboxState, hooks: WebhookDispatcher, creditor: Creditor, m: Mandate, amount: Decimal
) -> None:
    m.max_amount = amount
    if m.state in (SIGNED, SUSPENDED):
        _feed(state, creditor, m, "update", "Maximum amount changed by debtor", m.email, m.debtor_name)
        hooks.contract(creditor, m.mndt_id, "Update", m.state)


def cancel(
    state: SandboxState, hooks: WebhookDispatcher, creditor: Creditor, m: Mandate, reason: str, by_debtor: bool = False
) -> None:
    if m.state == CANCELLED:
        raise ApiError("err_mandate_invalid_state")
    if m.state == PREPARED:
        # A prepared mandate is deleted, not cancelled: no feed message, only a webhook.
        del creditor.mandates[m.mndt_id]
        hooks.contract(creditor, m.mndt_id, "Invite", PREPARED, reason="removed")
        return
    was_signed = m.state in (SIGNED, SUSPENDED)
    m.state = CANCELLED
    m.cancel_reason = reason
    if was_signed:
        email, name = (m.email, m.debtor_name) if by_debtor else (creditor.email, creditor.name)
        _feed(state, creditor, m, "cancel", reason, email, name)
    hooks.contract(creditor, m.mndt_id, "Cancel", CANCELLED)


def template_of(creditor: Creditor, raw: str | None) -> int:
    """The template ``ct`` names: missing or unknown is ``err_no_such_ct``, not a number ``err_invalid_ct``."""
    if not raw:
        raise ApiError("err_no_such_ct", extra="ct")
    try:
        ct = int(raw)
    except ValueError:
        raise ApiError("err_invalid_ct", extra="ct") from None
    if ct not in creditor.templates:
        raise ApiError("err_no_such_ct", extra="ct")
    return ct


def _existing(creditor: Creditor, ct: int, fields: dict[str, str], mndt_id: str) -> Mandate | None:
    """The mandate `check=true` returns instead of preparing a new one."""
    for m in creditor.mandates.values():
        if m.ct != ct or m.state == CANCELLED:
            continue
        if mndt_id and m.mndt_id == mndt_id:
            return m
        if fields.get("email") and m.email == fields["email"]:
            return m
        if fields.get("customer_number") and m.customer_number == fields["customer_number"]:
            return m
    return None


def _prepare(state: SandboxState, creditor: Creditor, params: dict[str, str]) -> tuple[Mandate, bool]:
    ct = template_of(creditor, params.get("ct"))
    fields = clean_fields(params)
    _check_invite_options(state, params)
    mndt_id = params.get("mandateNumber", "").strip().upper()
    if mndt_id:
        _check_mandate_number(creditor, mndt_id)
    if truthy(params.get("check")):
        found = _existing(creditor, ct, fields, mndt_id)
        if found:
            return found, False
    if mndt_id and mndt_id in creditor.mandates:
        raise ApiError("err_invalid_params", message="Mandate number already in use", extra="mandateNumber")
    fields_amount = _decimal(params["maxAmount"], "maxAmount") if "maxAmount" in params else None
    m = new_mandate(state, creditor, ct, fields, mndt_id)
    if fields_amount is not None:
        m.max_amount = fields_amount
    return m, True


def _check_mandate_number(creditor: Creditor, mndt_id: str) -> None:
    """A creditor-chosen number is a SEPA mandate reference (at most 35 of the allowed characters,
    no special character first or last) and must not look like one the template generates."""
    if len(mndt_id) > 35:
        raise ApiError("err_invalid_params", message="Mandate number longer than 35", extra="mandateNumber")
    if not UMR_RE.match(mndt_id):
        raise ApiError("err_invalid_params", message="Mandate number has invalid characters", extra="mandateNumber")
    if mndt_id.startswith(creditor.prefix):
        raise ApiError("err_invalid_params", message="Mandate number uses the template's prefix", extra="mandateNumber")


def _decimal(raw: str, name: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except (InvalidOperation, AttributeError):
        raise ApiError("err_invalid_amount", extra=name) from None
    if not value.is_finite() or value < 0:
        raise ApiError("err_invalid_amount", extra=name)
    return value


def sign_url(request: Request, m: Mandate) -> str:
    return f"{str(request.base_url).rstrip('/')}/_sandbox/to/{m.key}"


def _parse_sign_date(raw: str | None) -> float | None:
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError("err_invalid_date", extra="signDate") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def lookup(creditor: Creditor, mndt_id: str | None) -> Mandate:
    if not mndt_id:
        raise ApiError("err_missing_params", extra="mndtId")
    m = creditor.mandates.get(mndt_id.strip())
    if m is None:
        raise ApiError("err_no_contract")
    return m


# ---- routes ----------------------------------------------------------------------------------
@router.post("/invite")
@router.post("/prepare")
async def invite(request: Request) -> JSONResponse:
    creditor = authenticate(request)
    params = await read_params(request)
    m, _ = _prepare(state_of(request), creditor, params)
    if m.state == PREPARED:
        hooks_of(request).contract(creditor, m.mndt_id, "Invite", PREPARED)
    return JSONResponse({"url": sign_url(request, m), "key": m.key, "mndtId": m.mndt_id})


MAX_SIGNATURE_IMAGE = 150 * 1024  # [OAS] digsig: "Base64 encoded PNG signature (max 150KB)"


def _check_signature_image(raw: str) -> None:
    try:
        image = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError("err_invalid_params", message="digsig is no base64", extra="digsig") from None
    if not image.startswith(b"\x89PNG\r\n\x1a\n") or len(image) > MAX_SIGNATURE_IMAGE:
        raise ApiError("err_invalid_params", message="digsig is no PNG of at most 150 KB", extra="digsig")


@router.post("/sign")
async def sign_route(request: Request) -> JSONResponse:
    creditor = authenticate(request)
    state, hooks = state_of(request), hooks_of(request)
    params = await read_params(request)
    method = params.get("method", "").strip().lower()
    if not method:
        raise ApiError("err_missing_params", extra="method")
    if method not in SIGN_METHODS:
        raise ApiError("err_invalid_params", message=f"Unknown method {method}", extra="method")
    if params.get("digsig"):
        _check_signature_image(params["digsig"])
    sign_date = _parse_sign_date(params.get("signDate"))
    bank_signature = None if "bankSignature" not in params else truthy(params["bankSignature"])
    if params.get("key"):
        m = next((x for x in creditor.mandates.values() if x.key == params["key"]), None)
        if m is None:
            raise ApiError("err_no_contract", extra="key")
        for attr, value in clean_fields(params).items():
            setattr(m, attr, value)
    else:
        m, created = _prepare(state, creditor, params)
        if not created and m.state != PREPARED:
            return JSONResponse({"Msg": "OK", "MndtId": m.mndt_id})
    if method in IMMEDIATE_METHODS:
        sign(state, hooks, creditor, m, method, place=params.get("place", ""), sign_date=sign_date,
             bank_signature=bank_signature)  # fmt: skip
        return JSONResponse({"Msg": "OK", "MndtId": m.mndt_id})
    # Interactive methods: the debtor completes the signature (control API or the sign page).
    if bank_signature is not None:
        m.bank_signature = bank_signature
    return JSONResponse({"Msg": "OK", "MndtId": m.mndt_id, "url": sign_url(request, m)})


@router.get("/mandate/detail")
async def detail(request: Request) -> JSONResponse:
    creditor = authenticate(request)
    headers = check_rate_limit(request, creditor)
    m = lookup(creditor, request.query_params.get("mndtId"))
    if m.state not in (SIGNED, SUSPENDED) and not truthy(request.query_params.get("force")):
        raise ApiError("err_no_contract", message=f"Mandate is {m.state}; use force=true")
    headers["X-STATE"] = m.state
    headers["X-COLLECTABLE"] = "true" if m.state == SIGNED else "false"
    return JSONResponse({"Mndt": mandate_json(m, creditor)}, headers=headers)


@router.post("/mandate/update")
async def update(request: Request) -> Response:
    creditor = authenticate(request)
    state, hooks = state_of(request), hooks_of(request)
    params = await read_params(request)
    m = lookup(creditor, params.get("mndtId"))
    if m.state == CANCELLED:
        raise ApiError("err_invalid_state", message="Mandate is cancelled")
    fields = clean_fields(params)
    new_ct = None
    if params.get("ct"):
        new_ct = template_of(creditor, params["ct"])
        if creditor.templates[new_ct] != m.scheme:
            raise ApiError("err_invalid_ct", message="Template of another type", extra="ct")
    wanted = params.get("state", "").strip().lower()
    if wanted and wanted not in ("active", "passive"):
        raise ApiError("err_invalid_params", extra="state")
    signed = m.state in (SIGNED, SUSPENDED)
    if (fields or new_ct) and m.scheme == "B2B" and signed:
        raise ApiError("err_invalid_state", message="A signed B2B mandate cannot be edited")
    new_state = m.state
    if wanted == "passive":
        if m.state not in (SIGNED, SUSPENDED):
            raise ApiError("err_invalid_state", message=f"Cannot suspend a {m.state} mandate")
        new_state = SUSPENDED
    elif wanted == "active":
        if m.state not in (SIGNED, SUSPENDED):
            raise ApiError("err_invalid_state", message=f"Cannot resume a {m.state} mandate")
        new_state = SIGNED
    changed = {a: v for a, v in fields.items() if getattr(m, a) != v}
    for attr, value in changed.items():
        setattr(m, attr, value)
    if new_ct is not None and new_ct != m.ct:
        m.ct = new_ct
        changed["ct"] = str(new_ct)
    state_changed = new_state != m.state
    m.state = new_state
    if signed and (changed or state_changed):
        if state_changed:
            reason = "Suspended" if new_state == SUSPENDED else "Resumed"
        else:
            reason = "Updated by creditor: " + ", ".join(sorted(changed))
        _feed(state, creditor, m, "update", reason, creditor.email, creditor.name)
        hooks.contract(creditor, m.mndt_id, "Update", m.state)
    return Response(status_code=204)


@router.delete("/mandate")
async def delete(request: Request) -> Response:
    creditor = authenticate(request)
    params = await read_params(request)
    m = lookup(creditor, params.get("mndtId"))
    reason = params.get("rsn", "").strip()
    if not reason:
        raise ApiError("err_missing_params", extra="rsn")
    cancel(state_of(request), hooks_of(request), creditor, m, reason)
    return Response(status_code=200)


@router.get("/mandate/query")
async def query(request: Request) -> JSONResponse:
    creditor = authenticate(request)
    headers = check_rate_limit(request, creditor)
    q = request.query_params
    wanted_state = (q.get("state") or "").upper()
    if wanted_state not in ("", SIGNED, PREPARED, CANCELLED):  # [OAS]: SIGNED/PREPARED/CANCELLED
        raise ApiError("err_invalid_params", extra="state")
    try:
        page = max(0, int(q.get("page") or 0))
    except ValueError:
        raise ApiError("err_invalid_params", extra="page") from None
    iban = (q.get("iban") or "").replace(" ", "").upper()
    found = [
        m
        for m in creditor.mandates.values()
        if (not iban or m.iban == iban)
        and (not q.get("customerNumber") or m.customer_number == q["customerNumber"])
        and (not q.get("email") or m.email == q["email"])
        and (not wanted_state or m.state == wanted_state)
    ]
    chunk = found[page * 500 : (page + 1) * 500]
    contracts = [
        {
            "id": m.contract_id,
            "type": m.scheme,
            "state": m.state,
            "mandateNumber": m.mndt_id,
            "contractNumber": m.contract_number,
            "signDate": day(m.sign_date) if m.sign_date else None,
            "iban": m.iban,
            "bic": m.bic,
        }
        for m in chunk
    ]
    return JSONResponse({"Contracts": contracts}, headers=headers)


@router.post("/mandate/{mndt_id}/action")
async def action(mndt_id: str, request: Request) -> Response:
    creditor = authenticate(request)
    params = await read_params(request)
    lookup(creditor, mndt_id)
    if params.get("type") not in ("invite", "reminder", "access", "automaticCheck", "manualCheck"):
        raise ApiError("err_invalid_params", extra="type")
    if params.get("type") == "reminder" and params.get("reminder", "1") not in ("1", "2", "3", "4"):
        raise ApiError("err_invalid_params", extra="reminder")  # [OAS]: 1-4
    # The sandbox sends no e-mails or SMS: the action is accepted and has no visible effect.
    return Response(status_code=204)
