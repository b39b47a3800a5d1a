"""The settings area (Twikey, Twinfield, collection policy, ERP endpoints, tokens) and setting up a
new tenant from the sign-in page.

Every form is checked here as strictly as the service checks it, and whatever the service still
refuses comes back beside its field; a refused form changes nothing and is shown again with what
was typed (422). A form that was accepted redirects to its page (POST-redirect-GET). Secrets a
service shows once ride to that page in a one-time cookie (see ``forms``)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from koppel_console.app import Session, api, back, check_csrf, page, sign_in_response, templates
from koppel_console.forms import (
    Errors,
    euros_to_cents,
    forget_once,
    keep_once,
    read_once,
    unavailable,
    whole_number,
)
from koppel_console.services import Answer, SessionEnded
from koppel_console.settings import Settings
from koppel_shared.auth import TokenError, verify_token

router = APIRouter(prefix="/console", include_in_schema=False)

SECTIONS = {
    "twikey": "Twikey",
    "twinfield": "Twinfield",
    "policy": "Collection policy",
    "endpoints": "ERP endpoints",
    "tokens": "Tokens",
}
TOKEN_SCOPES = ("erp", "operator")
EVENT_PATTERN = re.compile(r"\*|[a-z_]+\.(\*|[a-z_]+)")
# A cheap authenticated read per service: 401 until the service has heard of a new tenant.
KNOWS_TENANT = {
    "sync": "/v1/tenants/me",
    "mandate": "/v1/mandates/stats",
    "collection": "/v1/collection-policy",
    "bookkeeping": "/v1/twinfield/connection",
    "notify": "/v1/webhook-endpoints",
}
NEW_TENANT_WAIT = 20.0


def settings_page(request: Request, session: Any, section: str, status_code: int = 200, **context: Any) -> Response:
    """A settings page; what the last POST kept for it (a secret, a test's outcome) shown once."""
    once = read_once(request, session[1])
    response = page(
        request, f"settings_{section}.html", session, status_code=status_code, sections=SECTIONS, section=section,
        once=once if once.get("section") == section else {}, **context,
    )  # fmt: skip
    if once:
        forget_once(response)
    return response


def kept(path: str, flash: str, request: Request, session: Any, value: dict[str, Any]) -> Response:
    response = back(path, flash)
    keep_once(response, request, session[1], value)
    return response


# -- a new tenant from the sign-in page ---------------------------------------------------------


@router.post("/login/new-tenant")
async def new_tenant(
    request: Request, admin_token: Annotated[str, Form()], name: Annotated[str, Form()] = ""
) -> Response:
    """An installation's admin token creates the tenant at sync-svc, which answers with the
    tenant's first operator token; the browser is signed in with that."""
    name, admin_token = name.strip(), admin_token.strip()
    errors = Errors()
    if not 1 <= len(name) <= 200:
        errors.add("name", "the company's name, 1 to 200 characters")
    if not admin_token:
        errors.add("admin_token", "paste the installation's admin token")
    else:
        # Checked here first: sync-svc also takes a tenant's own token (it registers that tenant).
        settings: Settings = request.app.state.settings
        try:
            principal = verify_token(settings.public_keys, admin_token, settings.jwt_issuer)
        except TokenError:
            errors.add("admin_token", "not a valid token of this installation")
        else:
            if not principal.has("admin"):
                errors.add("admin_token", "not an admin token (koppel token admin makes one)")
    if not errors:
        try:
            answer = await api(request).call("sync", "POST", "/v1/tenants", admin_token, json={"name": name})
        except SessionEnded as refused:  # the admin token, not a session: say so beside its field
            answer = Answer(False, 401, {"code": refused.code}, f"sync-svc refused the admin token: {refused.code}")
        if answer.ok and isinstance(answer.body, dict) and answer.body.get("operator_token"):
            await _wait_until_known(request, str(answer.body["operator_token"]))
            return sign_in_response(request, str(answer.body["operator_token"]))
        if answer.ok:
            errors.general.append("sync-svc registered the tenant but handed out no operator token.")
        elif isinstance(answer.body, dict) and answer.body.get("code") == "tenant_name_taken":
            errors.add("name", "a tenant of that name exists already")
        elif answer.status in (401, 403):
            errors.add("admin_token", _refusal(answer, "that token may not create tenants (an admin token is needed)"))
        else:
            errors.take_answer(answer)
    return templates.TemplateResponse(
        request, "login.html", {"error": None, "new_errors": errors, "name": name}, status_code=422
    )


def _refusal(answer: Answer, fallback: str) -> str:
    body = answer.body if isinstance(answer.body, dict) else {}
    return f"{body.get('detail') or fallback} ({body.get('code') or answer.status})"


async def _wait_until_known(request: Request, token: str) -> None:
    """Each service learns of a new tenant from ``tenant.registered``, within moments; the first
    pages read better once they all have."""
    deadline = time.monotonic() + NEW_TENANT_WAIT
    pending = dict(KNOWS_TENANT)
    while pending and time.monotonic() < deadline:
        answers = await asyncio.gather(*(api(request).call(s, "GET", p, token) for s, p in pending.items()))
        pending = {s: p for (s, p), a in zip(list(pending.items()), answers, strict=True) if a.status == 401}
        if pending:
            await asyncio.sleep(0.2)


# -- the settings area --------------------------------------------------------------------------


@router.get("/settings")
async def settings_home(session: Session) -> Response:
    return RedirectResponse("/console/settings/twikey", status_code=303)


# Twikey -----------------------------------------------------------------------------------------


@router.get("/settings/twikey")
async def twikey_page(request: Request, session: Session) -> Response:
    return await _twikey(request, session)


async def _twikey(
    request: Request, session: Any, errors: Errors | None = None, typed: dict[str, Any] | None = None
) -> Response:
    connection, feeds = await asyncio.gather(
        api(request).call("sync", "GET", "/v1/twikey/connection", session[1]),
        api(request).call("sync", "GET", "/v1/twikey/feeds", session[1]),
    )
    once = read_once(request, session[1])
    test = once.get("test") if once.get("section") == "twikey" else None
    return settings_page(
        request, session, "twikey", status_code=422 if errors else 200, connection=connection, feeds=feeds,
        test=test, errors=errors or Errors(), typed=typed or {},
        not_connected=connection.status == 404,
    )  # fmt: skip


@router.post("/settings/twikey")
async def twikey_save(
    request: Request,
    session: Session,
    csrf: Annotated[str, Form()],
    api_key: Annotated[str, Form()] = "",
    base_url: Annotated[str, Form()] = "",
    core_template_id: Annotated[str, Form()] = "",
    b2b_template_id: Annotated[str, Form()] = "",
    notify_before_collection: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session[1], csrf)
    current = await api(request).call("sync", "GET", "/v1/twikey/connection", session[1])
    typed = {"base_url": base_url, "core_template_id": core_template_id, "b2b_template_id": b2b_template_id}
    errors = Errors()
    api_key = api_key.strip()
    if api_key and not 8 <= len(api_key) <= 200:
        errors.add("api_key", "Twikey's API key: 8 to 200 characters")
    if not api_key and current.status == 404:
        errors.add("api_key", "the API key is needed the first time")
    base_url = base_url.strip()
    if base_url and (not re.match(r"^https?://", base_url) or len(base_url) > 500):
        errors.add("base_url", "an http(s) address, at most 500 characters")
    # Twikey's API cannot list a key's templates: the ids come from Twikey's dashboard (Settings →
    # Templates) and the Test checks that Twikey has them.
    for name, value in (("core_template_id", core_template_id), ("b2b_template_id", b2b_template_id)):
        if len(value.strip()) > 50:
            errors.add(name, "at most 50 characters")
    if errors:
        return await _twikey(request, session, errors, typed)
    existing = current.body if current.ok and isinstance(current.body, dict) else {}
    body: dict[str, Any] = {
        "core_template_id": core_template_id.strip() or existing.get("core_template_id"),
        "b2b_template_id": b2b_template_id.strip() or existing.get("b2b_template_id"),
        "notify_before_collection": bool(notify_before_collection),
    }
    if api_key:
        body["api_key"] = api_key
    if base_url or existing.get("base_url"):
        body["base_url"] = base_url or existing.get("base_url")
    answer = await api(request).call("sync", "PUT", "/v1/twikey/connection", session[1], json=body)
    if not answer.ok:
        errors.take_answer(answer)
        return await _twikey(request, session, errors, typed)
    return back("/console/settings/twikey", "Twikey settings saved." + (" Now press Test." if api_key else ""))


@router.post("/settings/twikey/test")
async def twikey_test(request: Request, session: Session, csrf: Annotated[str, Form()]) -> Response:
    check_csrf(request, session[1], csrf)
    answer = await api(request).call("sync", "POST", "/v1/twikey/connection/test", session[1])
    if not answer.ok:
        return back("/console/settings/twikey", answer.error or "the test could not run")
    outcome = answer.body if isinstance(answer.body, dict) else {}
    test = {
        "ok": bool(outcome.get("ok")),
        "code": outcome.get("code"),
        "message": outcome.get("message"),
        "merchant_id": outcome.get("merchant_id"),
        "templates": outcome.get("templates") or [],
        "template_problems": outcome.get("template_problems") or [],
    }
    flash = "Twikey accepted the key." if test["ok"] else "Twikey refused the key."
    if test["ok"] and test["template_problems"]:
        flash += " Check the mandate templates."
    return kept("/console/settings/twikey", flash, request, session, {"section": "twikey", "test": test})


# Twinfield --------------------------------------------------------------------------------------


@router.get("/twinfield")
async def twinfield_connected(session: Session, connected: str = "") -> Response:
    """Where bookkeeping-svc sends the browser back after Twinfield's consent page."""
    return back("/console/settings/twinfield", "Twinfield connected." if connected else "Back from Twinfield.")


@router.get("/settings/twinfield")
async def twinfield_page(request: Request, session: Session, office: str = "") -> Response:
    return await _twinfield(request, session, office=office)


async def _twinfield(
    request: Request, session: Any, office: str = "", errors: Errors | None = None, typed: dict[str, Any] | None = None
) -> Response:
    connection = await api(request).call("bookkeeping", "GET", "/v1/twinfield/connection", session[1])
    conn = connection.body if connection.ok and isinstance(connection.body, dict) else {}
    connected = conn.get("status") == "connected"
    offices = accounts = None
    chosen = (office or (typed or {}).get("office") or conn.get("office") or "").strip()
    if connected:
        offices = await api(request).call("bookkeeping", "GET", "/v1/twinfield/offices", session[1])
        if not chosen and offices.ok and len(offices.items) == 1:
            chosen = str(offices.items[0].get("code"))
        if chosen:
            accounts = await api(request).call(
                "bookkeeping", "GET", "/v1/twinfield/accounts", session[1], params={"office": chosen}
            )
    return settings_page(
        request, session, "twinfield", status_code=422 if errors else 200, connection=connection, conn=conn,
        connected=connected, offices=offices, accounts=accounts, chosen=chosen, errors=errors or Errors(),
        typed=typed or {}, unavailable=unavailable,
    )  # fmt: skip


@router.post("/settings/twinfield/connect")
async def twinfield_connect(request: Request, session: Session, csrf: Annotated[str, Form()]) -> Response:
    """To Twinfield's consent page; bookkeeping-svc's callback brings the browser back."""
    check_csrf(request, session[1], csrf)
    answer = await api(request).call("bookkeeping", "POST", "/v1/twinfield/connect", session[1])
    url = answer.body_value("authorize_url")
    if not answer.ok or not isinstance(url, str) or not re.match(r"^https?://", url):
        return back("/console/settings/twinfield", answer.error or "bookkeeping-svc gave no address to connect")
    return RedirectResponse(url, status_code=303)


@router.post("/settings/twinfield")
async def twinfield_save(
    request: Request,
    session: Session,
    csrf: Annotated[str, Form()],
    office: Annotated[str, Form()] = "",
    debtor_account: Annotated[str, Form()] = "",
    direct_debit_account: Annotated[str, Form()] = "",
    paylink_account: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session[1], csrf)
    typed = {
        "office": office.strip(),
        "debtor_account": debtor_account.strip(),
        "direct_debit_account": direct_debit_account.strip(),
        "paylink_account": paylink_account.strip(),
    }
    errors = Errors()
    if not typed["office"]:
        errors.add("office", "choose the office (administration)")
    for name in ("debtor_account", "direct_debit_account", "paylink_account"):
        if not 1 <= len(typed[name]) <= 16:
            errors.add(name, "choose an account of the office")
    current = await api(request).call("bookkeeping", "GET", "/v1/twinfield/connection", session[1])
    conn = current.body if current.ok and isinstance(current.body, dict) else {}
    if not errors and conn.get("status") == "connected":
        # Only what Twinfield has: the office among the connection's, the accounts the office's own.
        offices, accounts = await asyncio.gather(
            api(request).call("bookkeeping", "GET", "/v1/twinfield/offices", session[1]),
            api(request).call(
                "bookkeeping", "GET", "/v1/twinfield/accounts", session[1], params={"office": typed["office"]}
            ),
        )
        if offices.ok and typed["office"] not in {str(o.get("code")) for o in offices.items}:
            errors.add("office", "not an office this Twinfield connection has")
        elif accounts.ok:
            codes = {str(a.get("code")) for a in accounts.items}
            for name in ("debtor_account", "direct_debit_account", "paylink_account"):
                if typed[name] not in codes:
                    errors.add(name, f"office {typed['office']} has no account {typed[name]}")
    if errors:
        return await _twinfield(request, session, errors=errors, typed=typed)
    body = {
        "office": typed["office"],
        "debtor_account": typed["debtor_account"],
        "cross_accounts": {"direct_debit": typed["direct_debit_account"], "paylink": typed["paylink_account"]},
        # kept as they are: this form does not show them
        "memo_daybook": conn.get("memo_daybook") or "MEMO",
        "freetext_field": conn.get("freetext_field"),
    }
    answer = await api(request).call("bookkeeping", "PUT", "/v1/twinfield/connection", session[1], json=body)
    if not answer.ok:
        rename = {"cross_accounts.direct_debit": "direct_debit_account", "cross_accounts.paylink": "paylink_account"}
        errors.take_answer(answer, rename)
        return await _twinfield(request, session, errors=errors, typed=typed)
    return back("/console/settings/twinfield", "Twinfield office and accounts saved.")


# Collection policy ------------------------------------------------------------------------------

POLICY_HELP = {
    "auto_collect": "Collect every invoice by direct debit on its own; off: only when you collect it by hand.",
    "lead_days": "How many days before the due date the debit is sent to Twikey (0–60).",
    "max_amount_eur": "Invoices above this amount are held for you instead of collected (empty: no maximum).",
    "notify_debtor": "Twikey tells the debtor before each collection (pre-notification).",
    "paylink_when_no_mandate": "A customer without a signed mandate gets a Twikey pay link instead.",
    "retry_r_codes": "Bank refusals (R-codes) that are tried again on their own, e.g. AM04 (insufficient funds).",
    "retry_after_days": "Days between a refused collection and its retry (1–60).",
    "max_attempts": "Attempts in all for one invoice: 2 means one retry (1–5).",
    "transliterate_text": "Texts Twikey cannot carry (ë, ß, €) are written in SEPA characters instead of refused.",
}
POLICY_BOOLS = ("auto_collect", "notify_debtor", "paylink_when_no_mandate", "transliterate_text")
POLICY_RENAME = {"max_amount_cents": "max_amount_eur"}


def _policy_from_form(form: dict[str, str], errors: Errors) -> dict[str, Any]:
    body: dict[str, Any] = {name: form.get(name) == "on" for name in POLICY_BOOLS}
    body["lead_days"] = whole_number(form.get("lead_days", ""), "lead_days", errors, 0, 60)
    body["retry_after_days"] = whole_number(form.get("retry_after_days", ""), "retry_after_days", errors, 1, 60)
    body["max_attempts"] = whole_number(form.get("max_attempts", ""), "max_attempts", errors, 1, 5)
    body["max_amount_cents"] = euros_to_cents(form.get("max_amount_eur", ""), "max_amount_eur", errors)
    codes = [c.strip().upper() for c in re.split(r"[,\s]+", form.get("retry_r_codes", "")) if c.strip()]
    if any(not re.fullmatch(r"[A-Z]{2}\d{2}", c) for c in codes):
        errors.add("retry_r_codes", "SEPA reason codes such as AM04, separated by commas")
    body["retry_r_codes"] = codes
    return body


def _policy_typed(policy: dict[str, Any]) -> dict[str, str]:
    """The form's fields from a stored policy."""
    cents = policy.get("max_amount_cents")
    return {
        **{name: "on" if policy.get(name) else "" for name in POLICY_BOOLS},
        "lead_days": str(policy.get("lead_days", "")),
        "retry_after_days": str(policy.get("retry_after_days", "")),
        "max_attempts": str(policy.get("max_attempts", "")),
        "max_amount_eur": f"{cents / 100:.2f}" if isinstance(cents, int) else "",
        "retry_r_codes": ", ".join(policy.get("retry_r_codes") or []),
    }


async def _policy_form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {
        name: str(form.get(name, ""))
        for name in (*POLICY_BOOLS, "lead_days", "retry_after_days", "max_attempts", "max_amount_eur", "retry_r_codes")
    }


@router.get("/settings/policy")
async def policy_page(request: Request, session: Session) -> Response:
    policy = await api(request).call("collection", "GET", "/v1/collection-policy", session[1])
    stored = policy.body if policy.ok and isinstance(policy.body, dict) else {}
    return settings_page(
        request, session, "policy", policy=policy, typed=_policy_typed(stored), errors=Errors(), preview=None,
        help=POLICY_HELP, never_saved=stored.get("version") == 0,
    )  # fmt: skip


@router.post("/settings/policy/preview")
async def policy_preview(request: Request, session: Session, csrf: Annotated[str, Form()]) -> Response:
    """What the typed policy would do to the open invoices; nothing is stored."""
    check_csrf(request, session[1], csrf)
    return await _policy_post(request, session, preview=True)


@router.post("/settings/policy")
async def policy_save(request: Request, session: Session, csrf: Annotated[str, Form()]) -> Response:
    check_csrf(request, session[1], csrf)
    return await _policy_post(request, session, preview=False)


async def _policy_post(request: Request, session: Any, preview: bool) -> Response:
    typed = await _policy_form(request)
    errors = Errors()
    body = _policy_from_form(typed, errors)
    policy = await api(request).call("collection", "GET", "/v1/collection-policy", session[1])
    stored = policy.body if policy.ok and isinstance(policy.body, dict) else {}
    result = None
    status = 422
    if not errors:
        path = "/v1/collection-policy/preview" if preview else "/v1/collection-policy"
        answer = await api(request).call("collection", "POST" if preview else "PUT", path, session[1], json=body)
        if answer.ok and not preview:
            return back("/console/settings/policy", "Collection policy saved.")
        if answer.ok:
            result, status = answer, 200
        elif preview and unavailable(answer):
            errors.general.append("Preview is not available from collection-svc yet.")
            status = 200
        else:
            errors.take_answer(answer, POLICY_RENAME)
    return settings_page(
        request, session, "policy", status_code=status,
        policy=policy, typed=typed, errors=errors, preview=result, help=POLICY_HELP,
        never_saved=stored.get("version") == 0,
    )  # fmt: skip


# ERP endpoints ----------------------------------------------------------------------------------


@router.get("/settings/endpoints")
async def endpoints_page(request: Request, session: Session) -> Response:
    return await _endpoints(request, session)


async def _endpoints(
    request: Request, session: Any, errors: Errors | None = None, typed: dict[str, str] | None = None
) -> Response:
    endpoints = await api(request).call("notify", "GET", "/v1/webhook-endpoints", session[1])
    recent = await asyncio.gather(
        *(
            api(request).call(
                "notify", "GET", "/v1/deliveries", session[1], params={"endpoint": str(e.get("id")), "limit": 5}
            )
            for e in endpoints.items
        )
    )
    return settings_page(
        request, session, "endpoints", status_code=422 if errors else 200, endpoints=endpoints,
        recent={str(e.get("id")): r for e, r in zip(endpoints.items, recent, strict=True)}, errors=errors or Errors(),
        typed=typed or {"event_types": "*"},
    )  # fmt: skip


@router.post("/settings/endpoints")
async def endpoint_add(
    request: Request,
    session: Session,
    csrf: Annotated[str, Form()],
    url: Annotated[str, Form()] = "",
    event_types: Annotated[str, Form()] = "*",
    description: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session[1], csrf)
    typed = {"url": url.strip(), "event_types": event_types.strip(), "description": description.strip()}
    errors = Errors()
    if not re.match(r"^https?://\S+$", typed["url"]) or len(typed["url"]) > 2048:
        errors.add("url", "the https address of your ERP's webhook receiver")
    patterns = [p.strip() for p in typed["event_types"].split(",") if p.strip()] or ["*"]
    if any(not EVENT_PATTERN.fullmatch(p) for p in patterns):
        errors.add("event_types", "*, a family such as mandate.*, or a type such as collection.paid; commas between")
    if len(typed["description"]) > 500:
        errors.add("description", "at most 500 characters")
    if errors:
        return await _endpoints(request, session, errors, typed)
    body = {"url": typed["url"], "event_types": patterns, "description": typed["description"] or None}
    answer = await api(request).call("notify", "POST", "/v1/webhook-endpoints", session[1], json=body)
    if not answer.ok:
        errors.take_answer(answer)
        return await _endpoints(request, session, errors, typed)
    created = answer.body if isinstance(answer.body, dict) else {}
    secret = {"what": f"Signing secret of {typed['url']}", "value": created.get("secret")}
    return kept("/console/settings/endpoints", "Endpoint added.", request, session, {"section": "endpoints", **secret})


@router.post("/settings/endpoints/{endpoint_id}/test")
async def endpoint_test(request: Request, session: Session, endpoint_id: str, csrf: Annotated[str, Form()]) -> Response:
    check_csrf(request, session[1], csrf)
    path = f"/v1/webhook-endpoints/{quote(endpoint_id, safe='')}/test"
    answer = await api(request).call("notify", "POST", path, session[1])
    if unavailable(answer):
        return back("/console/settings/endpoints", "Send test is not available from notify-svc yet.")
    if not answer.ok:
        return back("/console/settings/endpoints", answer.error or "failed")
    return back("/console/settings/endpoints", f"Test event sent (delivery {answer.body_value('delivery_id')}).")


@router.post("/settings/endpoints/{endpoint_id}/rotate")
async def endpoint_rotate(
    request: Request, session: Session, endpoint_id: str, csrf: Annotated[str, Form()]
) -> Response:
    check_csrf(request, session[1], csrf)
    path = f"/v1/webhook-endpoints/{quote(endpoint_id, safe='')}/rotate-secret"
    answer = await api(request).call("notify", "POST", path, session[1])
    if not answer.ok:
        return back("/console/settings/endpoints", answer.error or "failed")
    until = answer.body_value("previous_secret_valid_until")
    secret = {"what": "New signing secret", "value": answer.body_value("secret"), "until": until}
    flash = "Secret rotated." + (f" The old one is still accepted until {until}." if until else "")
    return kept("/console/settings/endpoints", flash, request, session, {"section": "endpoints", **secret})


# Tokens -----------------------------------------------------------------------------------------


@router.get("/settings/tokens")
async def tokens_page(request: Request, session: Session) -> Response:
    return await _tokens(request, session)


async def _tokens(
    request: Request, session: Any, errors: Errors | None = None, typed: dict[str, Any] | None = None
) -> Response:
    tokens = await api(request).call("sync", "GET", "/v1/tokens", session[1])
    return settings_page(
        request, session, "tokens", status_code=422 if errors else 200, tokens=tokens,
        not_available=unavailable(tokens), errors=errors or Errors(),
        typed=typed or {"label": "", "scopes": ["erp"], "ttl_days": "365"}, scopes=TOKEN_SCOPES,
    )  # fmt: skip


@router.post("/settings/tokens")
async def token_issue(request: Request, session: Session, csrf: Annotated[str, Form()]) -> Response:
    check_csrf(request, session[1], csrf)
    form = await request.form()
    scopes = [str(s) for s in form.getlist("scopes")]
    ttl_days = str(form.get("ttl_days", "")).strip() or "365"
    typed: dict[str, Any] = {"label": str(form.get("label", "")).strip(), "scopes": scopes, "ttl_days": ttl_days}
    errors = Errors()
    if not 1 <= len(typed["label"]) <= 100 or any(ord(c) < 32 for c in typed["label"]):
        errors.add("label", "a name for the token, 1 to 100 characters (e.g. ERP production)")
    if not scopes or any(s not in TOKEN_SCOPES for s in scopes) or len(set(scopes)) != len(scopes):
        errors.add("scopes", "tick erp, operator or both")
    ttl = whole_number(ttl_days, "ttl_days", errors, 1, 730)
    if errors:
        return await _tokens(request, session, errors, typed)
    body = {"label": typed["label"], "scopes": scopes, "ttl_days": ttl}
    answer = await api(request).call("sync", "POST", "/v1/tokens", session[1], json=body)
    if not answer.ok:
        if unavailable(answer):
            errors.general.append("Issuing tokens is not available from sync-svc yet.")
        else:
            errors.take_answer(answer)
        return await _tokens(request, session, errors, typed)
    issued = answer.body if isinstance(answer.body, dict) else {}
    secret = {"what": f"Token {typed['label']} ({', '.join(scopes)})", "value": issued.get("token")}
    return kept("/console/settings/tokens", "Token issued.", request, session, {"section": "tokens", **secret})


@router.post("/settings/tokens/{token_id}/revoke")
async def token_revoke(request: Request, session: Session, token_id: str, csrf: Annotated[str, Form()]) -> Response:
    check_csrf(request, session[1], csrf)
    answer = await api(request).call("sync", "DELETE", f"/v1/tokens/{quote(token_id, safe='')}", session[1])
    return back("/console/settings/tokens", "Token revoked." if answer.ok else answer.error or "failed")
