"""REST for the console and operators: the Twinfield connection (``/v1/twinfield``), the
bookings with their errors and retries (``/v1/bookings``), and payment conflicts
(``/v1/bookings/conflicts``, also listed with the errors)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from bookkeeping_svc.domain.identity import CONFLICT_HINT
from bookkeeping_svc.service_layer import chart, conflicts, connection, intake, stats
from bookkeeping_svc.service_layer.gateway import gateway
from bookkeeping_svc.settings import Settings
from koppel_shared.deps import Operator, RuntimeDep, UowDep
from koppel_shared.web.errors import Problem

twinfield = APIRouter(prefix="/v1/twinfield", tags=["twinfield"])
booking_routes = APIRouter(prefix="/v1/bookings", tags=["bookings"])


def _settings(runtime: Any) -> Settings:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    return settings


# -- connection --------------------------------------------------------------------------------


class CrossAccounts(BaseModel):
    direct_debit: str = Field("1105", min_length=1, max_length=16, description="Twikey direct debit (SEPA)")
    paylink: str = Field("1110", min_length=1, max_length=16, description="Twikey pay link")


class ConnectionIn(BaseModel):
    office: str = Field(min_length=1, max_length=64, description="Twinfield administration (office) code")
    debtor_account: str = Field("1300", min_length=1, max_length=16)
    cross_accounts: CrossAccounts = Field(default_factory=lambda: CrossAccounts())
    memo_daybook: str = Field("MEMO", min_length=1, max_length=16)
    freetext_field: int | None = Field(
        None, ge=1, le=3, description="header free-text field (1-3) that gets our reference, if enabled"
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "office": "NLA000001",
                    "debtor_account": "1300",
                    "cross_accounts": {"direct_debit": "1105", "paylink": "1110"},
                    "memo_daybook": "MEMO",
                    "freetext_field": 1,
                }
            ]
        }
    }


class BookingCounts(BaseModel):
    by_status: dict[str, int]
    tabs: dict[str, int]
    paused: int
    conflicts: int = Field(0, description="open payment conflicts (listed with the errors)")


class ConnectionOut(BaseModel):
    status: Literal["not_connected", "connected", "consent_lost"]
    reason: str | None = None
    consent_lost: bool = Field(False, description="Twinfield refused the refresh token: reconnect to resume bookings")
    reconnect_required: bool = Field(False, description="POST /v1/twinfield/connect is what to do next")
    cluster_url: str | None = Field(None, description="the Twinfield cluster the access token names")
    office: str | None
    organisation: str | None
    debtor_account: str
    cross_accounts: dict[str, str]
    memo_daybook: str
    freetext_field: int | None
    connected_at: datetime | None
    bookings: BookingCounts

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "status": "consent_lost",
                    "reason": "Twinfield refused the refresh token (invalid_grant); reconnect to resume bookings.",
                    "consent_lost": True,
                    "reconnect_required": True,
                    "cluster_url": "https://accounting.twinfield.com",
                    "office": "NLA000001",
                    "organisation": "KOPPEL",
                    "debtor_account": "1300",
                    "cross_accounts": {"direct_debit": "1105", "paylink": "1110"},
                    "memo_daybook": "MEMO",
                    "freetext_field": None,
                    "connected_at": "2025-03-14T09:00:00Z",
                    "bookings": {
                        "by_status": {"paused": 12},
                        "tabs": {"open": 12, "booked": 0, "error": 0},
                        "paused": 12,
                    },
                }
            ]
        }
    }


class ConnectOut(BaseModel):
    authorize_url: str
    expires_at: datetime

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "authorize_url": "https://login.twinfield.com/auth/authentication/connect/authorize?client_id=…",
                    "expires_at": "2025-03-14T09:15:00Z",
                }
            ]
        }
    }


class RefreshTokenIn(BaseModel):
    refresh_token: str = Field(min_length=8, max_length=4000)

    model_config = {"json_schema_extra": {"examples": [{"refresh_token": "rt-…"}]}}


@twinfield.get("/connection", response_model=ConnectionOut, summary="Connection status and settings")
async def get_connection(principal: Operator, uow: UowDep) -> dict[str, Any]:
    return await connection.status(uow, principal.tenant_id)


@twinfield.put("/connection", response_model=ConnectionOut, summary="Set office, accounts and reference field")
async def put_connection(body: ConnectionIn, principal: Operator, runtime: RuntimeDep, uow: UowDep) -> dict[str, Any]:
    """Once connected, the office and accounts are checked against Twinfield first: one the
    connection does not reach, or an account the office's chart does not have (or that is not a
    balance sheet account), is 422 with ``errors: [{field, rule, message}]`` and nothing changes."""
    cache = chart.chart_cache(runtime)
    await chart.check(
        gateway(runtime),
        cache,
        uow,
        principal.tenant_id,
        body.office,
        body.debtor_account,
        body.cross_accounts.model_dump(),
    )
    await connection.configure(
        uow,
        principal.tenant_id,
        connection.ConnectionSettings(
            office=body.office,
            debtor_account=body.debtor_account,
            cross_accounts=body.cross_accounts.model_dump(),
            memo_daybook=body.memo_daybook,
            freetext_field=body.freetext_field,
        ),
    )
    await uow.commit()
    gateway(runtime).forget(principal.tenant_id)  # the cached access carries the accounts
    cache.forget(principal.tenant_id)
    return await connection.status(uow, principal.tenant_id)


@twinfield.post("/connect", response_model=ConnectOut, summary="Start the OAuth connect flow")
async def connect(principal: Operator, runtime: RuntimeDep, uow: UowDep) -> dict[str, Any]:
    url, expires_at = await connection.start_connect(uow, gateway(runtime), _settings(runtime), principal.tenant_id)
    await uow.commit()
    return {"authorize_url": url, "expires_at": expires_at}


@twinfield.get("/oauth/callback", summary="Twinfield's redirect after consent (no token: the state names the tenant)")
async def oauth_callback(
    runtime: RuntimeDep,
    state: str = Query(..., max_length=200),
    code: str | None = Query(None, max_length=4000),
    error: str | None = Query(None, max_length=200),
    error_description: str | None = Query(None, max_length=1000),
) -> Response:
    settings = _settings(runtime)
    if error:
        detail = f"Twinfield did not grant access: {error} {error_description or ''}".strip()
        raise Problem(400, "twinfield_consent_refused", detail)
    if not code:
        raise Problem(400, "missing_code", "the callback carries neither code nor error")
    tenant_id = await connection.complete_connect(runtime, gateway(runtime), settings, code, state)
    if settings.console_url:
        return RedirectResponse(f"{settings.console_url.rstrip('/')}/twinfield?connected=1", status_code=303)
    return HTMLResponse(
        "<!DOCTYPE html><html><head><title>Twinfield connected</title></head><body>"
        f"<h1>Twinfield connected</h1><p>Tenant {tenant_id}: bookings will be sent to Twinfield.</p>"
        "</body></html>"
    )


@twinfield.post(
    "/connection/refresh-token",
    response_model=ConnectionOut,
    summary="Connect with an existing refresh token (headless set-up, migrations)",
)
async def put_refresh_token(
    body: RefreshTokenIn, principal: Operator, runtime: RuntimeDep, uow: UowDep
) -> dict[str, Any]:
    await connection.connect_with_refresh_token(runtime, gateway(runtime), principal.tenant_id, body.refresh_token)
    return await connection.status(uow, principal.tenant_id)


# -- bookings ----------------------------------------------------------------------------------


class MoreInfo(BaseModel):
    code: str | None = Field(None, description="classified reason, e.g. invoice_not_found, period_closed")
    message: str | None = Field(None, description="Twinfield's own message (or ours when we found nothing)")
    hint: str | None = Field(None, description="what an operator can do about it")


class BookingOut(BaseModel):
    id: uuid.UUID
    status: str
    collection_id: str
    payment_kind: Literal["transaction", "paylink"] = Field(
        description="what was paid at Twikey: a direct-debit transaction or a pay link"
    )
    twikey_id: str | None = Field(description="Twikey's id in that kind's numbering (the kinds' ids overlap)")
    twikey_transaction_id: str | None = Field(description="direct debits only; use payment_kind + twikey_id")
    reference: str = Field(description="what Twinfield knows the payment by (MEMO description, free text)")
    invoice_number: str
    customer_number: str
    customer_email: str | None
    amount_cents: int
    method: str
    paid_on: date
    office: str | None
    customer_code: str | None = Field(None, description="Twinfield customer (dim2)")
    memo_number: str | None
    sales_daybook: str | None
    sales_number: str | None
    reversal_memo_number: str | None
    attempts: int
    more_info: MoreInfo | None = None
    created_at: datetime
    updated_at: datetime
    booked_at: datetime | None
    matched_at: datetime | None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "6c1d0f3e-8d5e-4a55-9d7e-0d2f1b0c7a11",
                    "status": "error",
                    "collection_id": "c-1",
                    "payment_kind": "transaction",
                    "twikey_id": "123",
                    "twikey_transaction_id": "123",
                    "reference": "TX123",
                    "invoice_number": "F2025-0042",
                    "customer_number": "1001",
                    "customer_email": "info@dekorf.nl",
                    "amount_cents": 12100,
                    "method": "direct_debit",
                    "paid_on": "2025-03-14",
                    "office": "NLA000001",
                    "customer_code": None,
                    "memo_number": None,
                    "sales_daybook": None,
                    "sales_number": None,
                    "reversal_memo_number": None,
                    "attempts": 1,
                    "more_info": {
                        "code": "invoice_not_found",
                        "message": "Geen verkoopboeking met factuurnummer F2025-0042 gevonden.",
                        "hint": "De verkoopfactuur staat niet (open) in Twinfield. Boek de factuur en probeer opnieuw.",
                    },
                    "created_at": "2025-03-14T09:00:00Z",
                    "updated_at": "2025-03-14T09:00:02Z",
                    "booked_at": None,
                    "matched_at": None,
                }
            ]
        }
    }


class IncomingPayment(BaseModel):
    """The collection as it was announced the second time (``collection.paid``)."""

    collection_id: str
    payment_kind: str | None = None
    twikey_id: str | None = None
    twikey_transaction_id: str | None = None
    invoice_id: str
    invoice_number: str
    customer_number: str
    amount_cents: int
    method: str
    paid_at: datetime | None = None


class ConflictOut(BaseModel):
    id: uuid.UUID
    code: Literal["payment_conflict"]
    status: Literal["open", "dismissed", "booked"]
    differences: list[Literal["payment", "amount", "invoice"]] = Field(
        description="what differs from the existing booking: the Twikey payment, the amount, the invoice"
    )
    payment_kind: str
    twikey_id: str | None
    existing: BookingOut = Field(description="the booking already made")
    incoming: IncomingPayment = Field(description="the announcement that was not booked")
    hint: str
    note: str | None
    resolved_booking_id: uuid.UUID | None = Field(None, description="the booking made of the incoming payment")
    created_at: datetime
    resolved_at: datetime | None


class BookingList(BaseModel):
    items: list[BookingOut]
    next_before: datetime | None = Field(
        None, description="pass as `before` for the next page (skips rows created at the same instant: use the cursor)"
    )
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last")
    conflicts: list[ConflictOut] = Field(
        default_factory=list, description="with `status=error`: the open payment conflicts (they need a person too)"
    )


class TabFigures(BaseModel):
    count: int
    oldest_created_at: datetime | None = Field(description="when the oldest booking in the tab was received")


class BookedDay(BaseModel):
    day: date
    booked: int
    booked_cents: int
    latency_p50_seconds: float | None = Field(description="paid (received by Koppel) → booked in Twinfield")
    latency_p90_seconds: float | None
    latency_p99_seconds: float | None


class BookingStats(BaseModel):
    by_status: dict[str, int]
    by_tab: dict[str, TabFigures] = Field(description="open | booked | error")
    per_day: list[BookedDay] = Field(description="oldest day first, days without any included")


class ConflictList(BaseModel):
    items: list[ConflictOut]
    next_before: datetime | None = None


class DismissIn(BaseModel):
    note: str = Field(min_length=1, max_length=2000, description="why this is not a payment to book")

    model_config = {"json_schema_extra": {"examples": [{"note": "amount corrected at the ERP; booked once"}]}}


class BookConflictIn(BaseModel):
    note: str | None = Field(None, max_length=2000)


class RetryAllIn(BaseModel):
    error_code: str | None = Field(None, max_length=32, description="only bookings failed with this code")

    model_config = {"json_schema_extra": {"examples": [{"error_code": "invoice_not_found"}]}}


class RetryAllOut(BaseModel):
    requeued: int


def _out(row: Any) -> dict[str, Any]:
    data = {name: getattr(row, name) for name in BookingOut.model_fields if hasattr(row, name)}
    if row.error_code or row.error_message or row.hint:
        data["more_info"] = {"code": row.error_code, "message": row.error_message, "hint": row.hint}
    return data


def _conflict_out(conflict: Any, existing: Any) -> dict[str, Any]:
    data = {name: getattr(conflict, name) for name in ConflictOut.model_fields if hasattr(conflict, name)}
    data.update(existing=_out(existing), hint=CONFLICT_HINT)
    return data


@booking_routes.get("", response_model=BookingList, summary="Bookings by tab: open, booked or error")
async def list_bookings(
    principal: Operator,
    uow: UowDep,
    status: Literal["open", "booked", "error"] | None = Query(None, description="the console's tab"),
    limit: int = Query(50, ge=1, le=500),
    before: datetime | None = None,
    q: str | None = Query(
        None,
        min_length=1,
        max_length=100,
        description="an invoice or customer number, a Twikey id, a MEMO number or part of the customer's name",
    ),
    cursor: str | None = Query(None, max_length=200, description="the `next_cursor` of the previous page"),
) -> dict[str, Any]:
    rows = await intake.list_bookings(uow, principal.tenant_id, status, limit, before, q, cursor)
    first_page = before is None and cursor is None
    found = await conflicts.list_conflicts(uow, principal.tenant_id) if status == "error" and first_page else []
    full = len(rows) == limit
    return {
        "items": [_out(r) for r in rows],
        "next_before": rows[-1].created_at if full else None,
        "next_cursor": intake.booking_cursor(rows[-1]) if full else None,
        "conflicts": [_conflict_out(c, b) for c, b in found],
    }


@booking_routes.get("/stats", response_model=BookingStats, summary="Bookings by status, booked per day, latency")
async def booking_stats(
    principal: Operator,
    uow: UowDep,
    days: int = Query(30, ge=1, le=90, description="how many days back, today included"),
) -> dict[str, Any]:
    return await stats.booking_stats(uow.session, principal.tenant_id, datetime.now(UTC).date(), days)


@booking_routes.get("/conflicts", response_model=ConflictList, summary="Payment conflicts (open by default)")
async def list_conflicts(
    principal: Operator,
    uow: UowDep,
    status: Literal["open", "dismissed", "booked"] | None = Query("open"),
    limit: int = Query(50, ge=1, le=500),
    before: datetime | None = None,
) -> dict[str, Any]:
    found = await conflicts.list_conflicts(uow, principal.tenant_id, status, limit, before)
    return {
        "items": [_conflict_out(c, b) for c, b in found],
        "next_before": found[-1][0].created_at if len(found) == limit else None,
    }


@booking_routes.get("/conflicts/{conflict_id}", response_model=ConflictOut, summary="One payment conflict")
async def get_conflict(conflict_id: uuid.UUID, principal: Operator, uow: UowDep) -> dict[str, Any]:
    return _conflict_out(*await conflicts.get_conflict(uow, principal.tenant_id, conflict_id))


@booking_routes.post(
    "/conflicts/{conflict_id}/dismiss", response_model=ConflictOut, summary="Not a payment to book: close with a note"
)
async def dismiss_conflict(conflict_id: uuid.UUID, body: DismissIn, principal: Operator, uow: UowDep) -> dict[str, Any]:
    resolved = await conflicts.dismiss(uow, principal.tenant_id, conflict_id, body.note)
    await uow.commit()
    return _conflict_out(*resolved)


@booking_routes.post(
    "/conflicts/{conflict_id}/book",
    response_model=ConflictOut,
    summary="A genuinely different payment: book it as its own booking",
)
async def book_conflict(
    conflict_id: uuid.UUID, principal: Operator, uow: UowDep, body: BookConflictIn | None = None
) -> dict[str, Any]:
    resolved = await conflicts.book(uow, principal.tenant_id, conflict_id, body.note if body else None)
    await uow.commit()
    return _conflict_out(*resolved)


@booking_routes.post("/retry", response_model=RetryAllOut, summary="Retry every failed booking (optionally one kind)")
async def retry_all(principal: Operator, uow: UowDep, body: RetryAllIn | None = None) -> dict[str, int]:
    count = await intake.retry_all(uow, principal.tenant_id, body.error_code if body else None)
    await uow.commit()
    return {"requeued": count}


@booking_routes.get("/{booking_id}", response_model=BookingOut, summary="One booking, Twinfield's message and a hint")
async def get_booking(booking_id: uuid.UUID, principal: Operator, uow: UowDep) -> dict[str, Any]:
    return _out(await intake.get_booking(uow, principal.tenant_id, booking_id))


@booking_routes.post("/{booking_id}/retry", response_model=BookingOut, summary="Retry one booking now")
async def retry_booking(booking_id: uuid.UUID, principal: Operator, uow: UowDep) -> dict[str, Any]:
    row = await intake.retry(uow, principal.tenant_id, booking_id)
    await uow.commit()
    return _out(row)


routers = [twinfield, booking_routes]
