"""The console's pages. Sign-in is a tenant token with the operator scope (pasted once, kept in
an HttpOnly, SameSite=Strict cookie); every form carries a CSRF token derived from it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from koppel_console import charts, checklist, overview
from koppel_console.services import ServiceApi, SessionEnded
from koppel_console.settings import Settings
from koppel_shared.auth import TenantPrincipal, TokenError, verify_token
from koppel_shared.messaging.broker import Broker
from koppel_shared.messaging.deadletters import list_dead_letters, replay_dead_letters
from koppel_shared.web.app import create_app
from koppel_shared.web.errors import Problem

COOKIE = "koppel_console_token"
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))
router = APIRouter(prefix="/console", include_in_schema=False)

BOOKING_TABS = {"open": "Open", "booked": "Booked", "errors": "Errors"}
MANDATE_STATUSES = ("requested", "prepared", "pending_bank", "active", "suspended", "cancelled", "rejected", "expired")
INVOICE_STATUSES = ("open", "scheduled", "submitted", "paid", "failed", "reversed", "skipped", "withdrawn")
DELIVERY_STATUSES = ("pending", "succeeded", "failed", "cancelled")
Search = Annotated[str | None, Query(max_length=100)]
EVENT_TYPE = re.compile(r"[a-z_]+(\.[a-z_]+|\.\*)")
Cursor = Annotated[str | None, Query(max_length=200)]
FEEDS = ("mandate", "transaction", "paylink")


class NotSignedIn(Exception):
    pass


def csrf_for(settings: Settings, token: str) -> str:
    return hmac.new(settings.derived_key("console-csrf"), token.encode(), hashlib.sha256).hexdigest()[:32]


def signed_in(request: Request) -> tuple[TenantPrincipal, str]:
    token = request.cookies.get(COOKIE, "")
    settings: Settings = request.app.state.settings
    try:
        principal = verify_token(settings.public_keys, token, settings.jwt_issuer)
    except TokenError as exc:
        raise NotSignedIn from exc
    if not principal.has("operator"):
        raise NotSignedIn
    return principal, token


Session = Annotated[tuple[TenantPrincipal, str], Depends(signed_in)]


def check_csrf(request: Request, token: str, value: str) -> None:
    if not hmac.compare_digest(csrf_for(request.app.state.settings, token), value):
        raise Problem(403, "csrf_failed", "the form is stale; reload the page and try again")


def api(request: Request) -> ServiceApi:
    service_api: ServiceApi = request.app.state.service_api
    return service_api


def page(
    request: Request, name: str, session: tuple[TenantPrincipal, str], status_code: int = 200, **context: Any
) -> HTMLResponse:
    principal, token = session
    return templates.TemplateResponse(
        request,
        name,
        {
            "tenant_id": principal.tenant_id,
            "csrf": csrf_for(request.app.state.settings, token),
            "flash": request.query_params.get("flash"),
            **context,
        },
        status_code=status_code,
    )


def _params(**values: str | None) -> dict[str, str]:
    """The filters the operator set (an empty search box or "all" sends nothing)."""
    return {key: value for key, value in values.items() if value}


def _check_choice(field: str, value: str, choices: tuple[str, ...]) -> None:
    if value and value not in choices:
        raise Problem(
            422,
            "validation_error",
            f"{field}: one of {', '.join(choices)}",
            errors=[{"field": field, "rule": "one_of", "message": f"one of {', '.join(choices)}"}],
        )


def _pager(request: Request, key: str, next_value: Any) -> dict[str, Any]:
    """Links to the next page (the service's cursor) and back to the first, keeping the filters."""

    def local(url: Any) -> str:  # path and query only: the page may be behind the gateway
        return f"{url.path}?{url.query}" if url.query else str(url.path)

    return {
        "next_url": local(request.url.include_query_params(**{key: next_value})) if next_value else None,
        "first_url": local(request.url.remove_query_params(key)) if key in request.query_params else None,
    }


def back(path: str, flash: str) -> RedirectResponse:
    return RedirectResponse(f"{path}{'&' if '?' in path else '?'}flash={flash}", status_code=303)


# Why a session ended, shown on the sign-in page (``?ended=<code>``; only these texts are shown).
ENDED = {
    "token_revoked": "Your session ended: its token was revoked. Sign in with another operator token.",
    "invalid_token": "Your session ended: its token is no longer valid (expired?). Sign in again.",
}


@router.get("/login")
async def login_form(request: Request, ended: Annotated[str | None, Query(max_length=40)] = None) -> Response:
    # Tokens are only ever posted, never put in a URL (URLs end up in access logs).
    return templates.TemplateResponse(request, "login.html", {"error": ENDED.get(ended or "")})


@router.post("/login")
async def login(request: Request, token: Annotated[str, Form()]) -> Response:
    return _sign_in(request, token.strip())


def _sign_in(request: Request, token: str) -> Response:
    settings: Settings = request.app.state.settings
    try:
        principal = verify_token(settings.public_keys, token, settings.jwt_issuer)
    except TokenError:
        return templates.TemplateResponse(request, "login.html", {"error": "That token is not valid."}, status_code=401)
    if not principal.has("operator"):
        return templates.TemplateResponse(
            request, "login.html", {"error": "That token has no operator scope."}, status_code=403
        )
    return sign_in_response(request, token)


def sign_in_response(request: Request, token: str) -> Response:
    settings: Settings = request.app.state.settings
    response = RedirectResponse("/console/overview", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/console", secure=not settings.is_dev)
    return response


@router.get("/logout")
async def logout() -> Response:
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("/")
async def home(session: Session) -> Response:
    return RedirectResponse("/console/overview", status_code=303)


@router.get("/overview")
async def overview_page(request: Request, session: Session) -> HTMLResponse:
    figures, (letters, letters_error), todo = await asyncio.gather(
        overview.gather(api(request), session[1]),
        _tenant_dead_letters(request, session[0]),
        checklist.gather(api(request), session[1]),
    )
    return page(
        request,
        "overview.html",
        session,
        o=figures,
        age=overview.age,
        per_day_chart=charts.per_day(figures.per_day),
        latency_chart=charts.latency(figures.per_day),
        dead_letters={service: len(items) for service, items in letters.items()},
        dead_letters_error=letters_error,
        checklist=todo,
    )


@router.get("/mandates")
async def mandates(
    request: Request, session: Session, q: Search = None, status: str = "", cursor: Cursor = None
) -> HTMLResponse:
    _check_choice("status", status, MANDATE_STATUSES)
    params = _params(q=q, status=status, cursor=cursor)
    answer = await api(request).call("mandate", "GET", "/v1/mandates", session[1], params=params)
    return page(
        request, "mandates.html", session, answer=answer, q=q, status=status, statuses=MANDATE_STATUSES,
        **_pager(request, "cursor", answer.body_value("next_cursor")),
    )  # fmt: skip


@router.get("/mandates/{mandate_id}")
async def mandate_detail(request: Request, session: Session, mandate_id: str) -> HTMLResponse:
    path = f"/v1/mandates/{quote(mandate_id, safe='')}"
    answer, history = await asyncio.gather(
        api(request).call("mandate", "GET", path, session[1]),
        api(request).call("mandate", "GET", f"{path}/history", session[1]),
    )
    status = 404 if answer.status == 404 else 200
    return page(request, "mandate.html", session, answer=answer, history=history, status_code=status)


@router.post("/mandates/{mandate_id}/remind")
async def remind(request: Request, session: Session, mandate_id: str, csrf: Annotated[str, Form()]) -> Response:
    check_csrf(request, session[1], csrf)
    answer = await api(request).call("mandate", "POST", f"/v1/mandates/{mandate_id}/remind", session[1])
    return back("/console/mandates", "Invite sent again." if answer.ok else answer.error or "failed")


@router.post("/mandates/{mandate_id}/cancel")
async def cancel(
    request: Request,
    session: Session,
    mandate_id: str,
    csrf: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "Cancelled by operator",
) -> Response:
    check_csrf(request, session[1], csrf)
    answer = await api(request).call(
        "mandate", "DELETE", f"/v1/mandates/{mandate_id}", session[1], params={"reason": reason}
    )
    return back("/console/mandates", "Mandate cancelled." if answer.ok else answer.error or "failed")


@router.get("/invoices")
async def invoices(
    request: Request, session: Session, q: Search = None, status: str = "", cursor: Cursor = None
) -> HTMLResponse:
    _check_choice("status", status, INVOICE_STATUSES)
    params = _params(q=q, status=status, cursor=cursor)
    answer = await api(request).call("collection", "GET", "/v1/invoices", session[1], params=params)
    return page(
        request, "invoices.html", session, answer=answer, q=q, status=status, statuses=INVOICE_STATUSES,
        **_pager(request, "cursor", answer.body_value("next_cursor")),
    )  # fmt: skip


@router.get("/bookings")
async def bookings(
    request: Request, session: Session, tab: str = "open", q: Search = None, cursor: Cursor = None
) -> HTMLResponse:
    tab = tab if tab in BOOKING_TABS else "open"
    params = _params(status="error" if tab == "errors" else tab, q=q, cursor=cursor)
    answer = await api(request).call("bookkeeping", "GET", "/v1/bookings", session[1], params=params)
    return page(
        request, "bookings.html", session, answer=answer, tab=tab, tabs=BOOKING_TABS, q=q,
        **_pager(request, "cursor", answer.body_value("next_cursor")),
    )  # fmt: skip


@router.post("/bookings/{booking_id}/retry")
async def retry_booking(request: Request, session: Session, booking_id: str, csrf: Annotated[str, Form()]) -> Response:
    check_csrf(request, session[1], csrf)
    answer = await api(request).call("bookkeeping", "POST", f"/v1/bookings/{booking_id}/retry", session[1])
    return back("/console/bookings?tab=errors", "Retry scheduled." if answer.ok else answer.error or "failed")


@router.post("/bookings/conflicts/{conflict_id}/{action}")
async def resolve_conflict(
    request: Request,
    session: Session,
    conflict_id: str,
    action: str,
    csrf: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
) -> Response:
    """A payment conflict: ``dismiss`` (with a note) or ``book`` the incoming payment."""
    check_csrf(request, session[1], csrf)
    if action not in ("dismiss", "book"):
        return back("/console/bookings?tab=errors", "unknown action")
    path = f"/v1/bookings/conflicts/{conflict_id}/{action}"
    answer = await api(request).call("bookkeeping", "POST", path, session[1], json={"note": note or None})
    done = "Conflict dismissed." if action == "dismiss" else "Booking scheduled."
    return back("/console/bookings?tab=errors", done if answer.ok else answer.error or "failed")


@router.get("/reconciliation")
async def reconciliation(request: Request, session: Session) -> HTMLResponse:
    """The latest run (with its progress while it runs) and the differences of the latest finished one."""
    runs = await api(request).call("bookkeeping", "GET", "/v1/reconciliation/runs", session[1], params={"limit": 5})
    answer = await api(request).call("bookkeeping", "GET", "/v1/reconciliation/differences", session[1])
    return page(request, "reconciliation.html", session, answer=answer, runs=runs)


@router.post("/reconciliation/run")
async def start_reconciliation(
    request: Request, session: Session, csrf: Annotated[str, Form()], since: Annotated[str, Form()] = ""
) -> Response:
    check_csrf(request, session[1], csrf)
    body = {"since": since} if since else {}
    answer = await api(request).call("bookkeeping", "POST", "/v1/reconciliation/runs", session[1], json=body)
    return back("/console/reconciliation", "Reconciliation started." if answer.ok else answer.error or "failed")


@router.post("/reconciliation/differences/{difference_id}/{action}")
async def fix_difference(
    request: Request,
    session: Session,
    difference_id: str,
    action: str,
    csrf: Annotated[str, Form()],
    note: Annotated[str, Form()] = "",
    invoice_number: Annotated[str, Form()] = "",
    customer_number: Annotated[str, Form()] = "",
) -> Response:
    """``book`` it, open an ``error`` on the bookings errors list, or ``ignore`` it with a note."""
    check_csrf(request, session[1], csrf)
    if action not in ("book", "error", "ignore"):
        return back("/console/reconciliation", "unknown action")
    body = {
        "action": action,
        "note": note or None,
        "invoice_number": invoice_number or None,
        "customer_number": customer_number or None,
    }
    path = f"/v1/reconciliation/differences/{difference_id}/fix"
    answer = await api(request).call("bookkeeping", "POST", path, session[1], json=body)
    return back("/console/reconciliation", "Done." if answer.ok else answer.error or "failed")


@router.post("/reconciliation/mandates/{number:path}/adopt")
async def adopt_mandate(request: Request, session: Session, number: str, csrf: Annotated[str, Form()]) -> Response:
    """A mandate at Twikey unknown to Koppel: adopted on mandate-svc's unclaimed list (its events
    are published, and the next reconciliation run no longer shows it)."""
    check_csrf(request, session[1], csrf)
    path = f"/v1/unclaimed-mandates/{quote(number, safe='')}/adopt"
    answer = await api(request).call("mandate", "POST", path, session[1])
    done = "Mandate adopted; the next run no longer shows it."
    return back("/console/reconciliation", done if answer.ok else answer.error or "failed")


@router.get("/feeds")
async def feeds(request: Request, session: Session) -> HTMLResponse:
    answer = await api(request).call("sync", "GET", "/v1/twikey/feeds", session[1])
    return page(request, "feeds.html", session, answer=answer, feeds=FEEDS)


@router.post("/feeds/reset")
async def feed_reset(
    request: Request,
    session: Session,
    csrf: Annotated[str, Form()],
    feed: Annotated[str, Form()],
    since: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, session[1], csrf)
    body: dict[str, Any] = {"feed": feed}
    if since.strip():
        body["since"] = since.strip()
    answer = await api(request).call("sync", "POST", "/v1/twikey/feeds/reset", session[1], json=body)
    return back("/console/feeds", f"Feed {feed} reset." if answer.ok else answer.error or "failed")


@router.get("/deliveries")
async def deliveries(
    request: Request,
    session: Session,
    q: Search = None,
    status: str = "",
    before: Annotated[str | None, Query(pattern=r"^\d{1,19}$")] = None,
) -> HTMLResponse:
    _check_choice("status", status, DELIVERY_STATUSES)
    params = _params(status=status, before=before, **_delivery_search(q))
    answer, endpoints = await asyncio.gather(
        api(request).call("notify", "GET", "/v1/deliveries", session[1], params=params),
        api(request).call("notify", "GET", "/v1/webhook-endpoints", session[1]),
    )
    return page(
        request, "deliveries.html", session, answer=answer, endpoints=endpoints, q=q, status=status,
        statuses=DELIVERY_STATUSES, **_pager(request, "before", answer.body_value("next_before")),
    )  # fmt: skip


def _delivery_search(q: str | None) -> dict[str, str]:
    """The delivery log is searched by event id, or by event type or family (``mandate.*``)."""
    if not q:
        return {}
    q = q.strip()
    with contextlib.suppress(ValueError):
        return {"event_id": str(uuid.UUID(q))}
    if EVENT_TYPE.fullmatch(q):
        return {"type": q}
    raise Problem(
        422,
        "validation_error",
        "q: an event id, or an event type such as mandate.signed or mandate.*",
        errors=[{"field": "q", "rule": "event_id_or_type", "message": "an event id or an event type"}],
    )


@router.get("/api-docs")
async def api_docs(request: Request) -> HTMLResponse:
    """Every service's API on one page (public: it is what an ERP developer reads first)."""
    specs = {}
    for service in request.app.state.settings.services:
        answer = await api(request).call(service, "GET", "/openapi.json", token="")
        specs[service] = answer
    return templates.TemplateResponse(request, "api_docs.html", {"specs": specs, "tenant_id": None, "flash": None})


@router.get("/dead-letters")
async def dead_letters(request: Request, session: Session) -> HTMLResponse:
    (letters, error), parked = await asyncio.gather(
        _tenant_dead_letters(request, session[0]),
        api(request).call("collection", "GET", "/v1/parked-updates", session[1]),
    )
    return page(request, "dead_letters.html", session, letters=letters, error=error, parked=parked)


async def _tenant_dead_letters(request: Request, principal: TenantPrincipal) -> tuple[dict[str, list[Any]], str | None]:
    settings: Settings = request.app.state.settings
    tenant = str(principal.tenant_id)
    letters: dict[str, list[Any]] = {}
    try:
        broker = await _broker(request)
        for service in settings.services:
            found = await list_dead_letters(broker, service, settings.queue_prefix, limit=200)
            letters[service] = [d for d in found if d.tenant_id == tenant]  # another tenant's stay hidden
    except Exception as exc:
        return letters, f"RabbitMQ is not reachable: {type(exc).__name__}"
    return letters, None


@router.post("/dead-letters/replay")
async def replay(
    request: Request,
    session: Session,
    csrf: Annotated[str, Form()],
    service: Annotated[str, Form()],
    message_id: Annotated[str, Form()],
) -> Response:
    check_csrf(request, session[1], csrf)
    settings: Settings = request.app.state.settings
    if service not in settings.services:
        raise Problem(422, "unknown_service", f"no service {service!r}")
    broker = await _broker(request)
    mine = {
        d.message_id
        for d in await list_dead_letters(broker, service, settings.queue_prefix, limit=1000)
        if d.tenant_id == str(session[0].tenant_id)
    }
    if message_id not in mine:
        return back("/console/dead-letters", "No such dead letter.")
    count = await replay_dead_letters(broker, service, settings.queue_prefix, {message_id})
    return back("/console/dead-letters", f"Replayed {count} message(s).")


@router.post("/parked-updates/retry")
async def retry_parked(
    request: Request, session: Session, csrf: Annotated[str, Form()], seq: Annotated[int, Form()]
) -> Response:
    check_csrf(request, session[1], csrf)
    # collection-svc keeps each tenant to its own parked updates (another's answers 404 not_parked)
    answer = await api(request).call("collection", "POST", "/v1/parked-updates/retry", session[1], json={"seqs": [seq]})
    return back("/console/dead-letters", f"Update {seq} put back in line." if answer.ok else answer.error or "failed")


async def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    if not broker.is_connected:
        await broker.connect(attempts=2)
    return broker


def build_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0)) as client:
            app.state.service_api = ServiceApi(
                client,
                {
                    "mandate": settings.mandate_url,
                    "collection": settings.collection_url,
                    "sync": settings.sync_url,
                    "bookkeeping": settings.bookkeeping_url,
                    "notify": settings.notify_url,
                },
            )
            app.state.broker = Broker(settings.amqp_url.get_secret_value(), settings.exchange)
            try:
                yield
            finally:
                await app.state.broker.close()

    from koppel_console import settings_pages  # it builds on this module's helpers

    routers = [router, settings_pages.router]
    app = create_app(title="Koppel console", settings=settings, routers=routers, lifespan=lifespan)

    @app.middleware("http")
    async def _server_timing(request: Request, call_next: Any) -> Response:
        # The page's own time on the server (service calls included), for browsers' dev tools and
        # the page benchmark.
        started = time.perf_counter()
        response: Response = await call_next(request)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    @app.exception_handler(NotSignedIn)
    async def _to_login(request: Request, exc: NotSignedIn) -> Response:
        return RedirectResponse("/console/login", status_code=303)

    @app.exception_handler(SessionEnded)
    async def _session_ended(request: Request, exc: SessionEnded) -> Response:
        # The services refuse this token (revoked on every service, expired): sign the browser
        # out instead of showing every page's 401, and say why on the sign-in page.
        response = RedirectResponse(f"/console/login?ended={exc.code}", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    return app
