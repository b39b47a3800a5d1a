"""Payment links: create, status, delete, the pay-link feed, and the debtor paying through a link.

A link paid with `sign` (and a template `ct`) also signs a new mandate for the debtor, which
shows up in the mandate feed like any other signed mandate. Every state change appends to the
pay-link feed and sends `type=payment&id=<link id>[&ref=<ref>]`. By default the feed returns
only changes to `paid`; `all=true` returns every change.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from . import mandates
from .amounts import parse_amount
from .auth import authenticate, check_rate_limit
from .deps import state_of
from .errors import ApiError, read_params
from .render import paylink_json
from .state import Creditor, FeedEvent, Paylink, SandboxState, snapshot_paylink
from .transactions import check_idempotency, remember_idempotency
from .webhooks import WebhookDispatcher

router = APIRouter(prefix="/creditor")

STATES = ("created", "started", "declined", "paid", "pending", "expired")
CUSTOMER_FIELDS = ("customerNumber", "email", "firstname", "lastname", "companyName", "coc", "l", "mobile",
                   "address", "city", "zip", "country")  # fmt: skip


def _feed(state: SandboxState, creditor: Creditor, p: Paylink) -> None:
    p.lastupdate = state.clock.now()
    event = FeedEvent(seq=state.next_seq(), at=p.lastupdate, kind=p.state, obj=snapshot_paylink(p))
    creditor.paylink_feed.append(event)


def set_state(state: SandboxState, hooks: WebhookDispatcher, creditor: Creditor, p: Paylink, new_state: str) -> None:
    if new_state not in STATES:
        raise ApiError("err_invalid_params", message=f"state must be one of {', '.join(STATES)}", extra="state")
    if p.state in ("paid", "expired"):
        raise ApiError("err_invalid_state", message=f"Link is {p.state}")
    p.state = new_state
    _feed(state, creditor, p)
    hooks.paylink(creditor, p.id, p.ref)


def pay(
    state: SandboxState,
    hooks: WebhookDispatcher,
    creditor: Creditor,
    p: Paylink,
    method: str = "bancontact",
    sign: bool = False,
    iban: str = "",
    bic: str = "",
) -> None:
    """The debtor pays the link; with `sign`, the payment also signs a mandate (ct needed)."""
    if p.state not in ("created", "started", "pending", "declined"):
        raise ApiError("err_invalid_state", message=f"Link is {p.state}")
    if sign:
        if p.ct is None:
            raise ApiError("err_invalid_params", message="This link has no template (ct) to sign", extra="ct")
        c = p.customer
        fields = mandates.clean_fields(
            {k: v for k, v in {"email": c.get("email", ""), "firstname": c.get("firstname", ""),
                               "lastname": c.get("lastname", ""), "companyName": c.get("companyName", ""),
                               "customerNumber": c.get("customerNumber", ""), "iban": iban, "bic": bic}.items() if v}
        )  # fmt: skip
        m = mandates.new_mandate(state, creditor, p.ct, fields)
        mandates.sign(state, hooks, creditor, m, method, iban=iban, bic=bic)
        p.mndt_id = m.mndt_id
    p.method = method
    p.state = "paid"
    _feed(state, creditor, p)
    hooks.paylink(creditor, p.id, p.ref)


@router.post("/payment/link")
async def create_route(request: Request) -> JSONResponse:
    creditor = authenticate(request)
    state = state_of(request)
    key = request.headers.get("idempotency-key")
    params = await read_params(request)
    check_idempotency(state, creditor, key)  # no await from here to the remember below
    title = (params.get("title") or params.get("message") or "").strip()
    if not title:
        raise ApiError("err_msg_missing", extra="title")
    if len(title) > 140:
        raise ApiError("err_invalid_params", message="Title longer than 140", extra="title")
    if not params.get("amount"):
        raise ApiError("err_invalid_amount", extra="amount")
    amount = parse_amount(params["amount"])
    ct = None
    if params.get("ct"):
        ct = mandates.template_of(creditor, params["ct"])
    if params.get("email") and not mandates.EMAIL_RE.match(params["email"]):
        raise ApiError("err_invalid_email", extra="email")
    _check_options(params)
    ref = (params.get("remittance") or params.get("ref") or "").strip() or None
    if ref and any(p.ref == ref and p.state not in ("expired",) for p in creditor.paylinks.values()):
        raise ApiError("err_duplicate_tx", extra="ref")
    ref = ref or title  # [OAS] remittance "Defaults to title if empty"
    now = state.clock.now()
    p = Paylink(
        id=state.next_paylink_id(),
        api_key=creditor.api_key,
        key="tr_" + secrets.token_urlsafe(12),
        amount=amount,
        msg=title,
        ref=ref,
        ct=ct,
        state="created",
        created_at=now,
        lastupdate=now,
        customer={k: params[k] for k in CUSTOMER_FIELDS if params.get(k)},
        method=params.get("method") or None,
        redirect_url=params.get("redirectUrl") or None,
    )
    creditor.paylinks[p.id] = p
    _feed(state, creditor, p)
    remember_idempotency(state, creditor, key)
    url = f"{str(request.base_url).rstrip('/')}/_sandbox/payment/{p.key}"
    return JSONResponse({**paylink_json(p), "url": url})


# [OAS] POST /payment/link: the values the description lists for these fields.
SEND_INVITE = frozenset({"email", "SMS", "registeredEmail"})
METHODS = frozenset(
    {"bancontact", "ideal", "maestro", "mastercard", "visa", "inghomepay", "kbc", "belfius", "paypal", "googlepay",
     "applepay", "banktrans"}
)  # fmt: skip


def _check_options(params: dict[str, str]) -> None:
    if params.get("redirectUrl") and not params["redirectUrl"].startswith(("http://", "https://")):
        raise ApiError("err_invalid_params", message="redirectUrl needs http:// or https://", extra="redirectUrl")
    if params.get("sendInvite") and params["sendInvite"] not in SEND_INVITE:
        raise ApiError("err_invalid_params", extra="sendInvite")
    if params.get("method") and params["method"] not in METHODS:
        raise ApiError("err_invalid_params", extra="method")
    if params.get("expiry") and not _is_moment(params["expiry"]):
        raise ApiError("err_invalid_date", message="Invalid expiry date", extra="expiry")


def _is_moment(raw: str) -> bool:
    """An ISO date or UTC timestamp, or epoch milliseconds (the description only says "UTC timestamp")."""
    value = raw.strip()
    if value.isdigit():
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _lookup(creditor: Creditor, params: dict[str, str]) -> list[Paylink]:
    if params.get("id"):
        try:
            link = creditor.paylinks.get(int(params["id"]))
        except ValueError:
            raise ApiError("err_invalid_params", extra="id") from None
        if link is None:
            raise ApiError("err_not_found")
        return [link]
    if params.get("ref"):
        found = [p for p in creditor.paylinks.values() if p.ref == params["ref"]]
        if not found:
            raise ApiError("err_not_found", message="Link not found")
        return found
    raise ApiError("err_missing_params", extra="id")


@router.get("/payment/link")
async def status_route(request: Request) -> JSONResponse:
    creditor = authenticate(request)
    headers = check_rate_limit(request, creditor)
    includes = set(request.query_params.getlist("include"))
    links = _lookup(creditor, dict(request.query_params))
    return JSONResponse({"Links": [paylink_json(p, includes) for p in links]}, headers=headers)


# The methods a template ("profile") offers when the sandbox is asked: what a pay page of it shows.
PROFILE_METHODS = ("bancontact", "ideal", "visa", "mastercard")


@router.get("/payment/methods")
async def methods_route(request: Request) -> JSONResponse:
    """``GET /payment/methods?ct=`` (twikey/development-kit docs/openapi.yaml, "Retrieve activated
    payment methods from profile settings"): ``ct`` required, and the only documented refusal is
    ``err_no_such_ct``, so a missing, non-numeric or unknown template is that code. The 200 body's
    shape is not published (``application/json: {}``): the sandbox answers an object of its own."""
    creditor = authenticate(request)
    raw = request.query_params.get("ct", "")
    if not raw.isdigit() or int(raw) not in creditor.templates:
        raise ApiError("err_no_such_ct", extra="ct")
    ct = int(raw)
    return JSONResponse({"ct": ct, "methods": list(PROFILE_METHODS)})


@router.delete("/payment/link")
async def delete_route(request: Request) -> Response:
    creditor = authenticate(request)
    params = await read_params(request)
    for p in _lookup(creditor, params):
        if p.state == "created":
            del creditor.paylinks[p.id]
        # Links that were already used are archived in Twikey; the sandbox leaves them as they are.
    return JSONResponse({})  # [OAS]: 200 with an empty object
