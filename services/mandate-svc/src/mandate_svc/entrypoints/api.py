"""The ERP's mandate API (tenant token, scope ``erp`` or ``operator``). Thin: parse, call a use
case, shape the answer. Every query is scoped to the token's tenant: another tenant's mandate is
a 404 and never shows up in a list."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from koppel_shared.auth import TenantPrincipal
from koppel_shared.debtor import DEBTOR_FIELDS
from koppel_shared.deps import UowDep
from koppel_shared.web.auth import require_scope
from koppel_shared.web.errors import Problem, problem_response
from mandate_svc.adapters import repository as repo
from mandate_svc.dependencies import Deps, RuntimeDep
from mandate_svc.domain.model import InvalidState, Mandate, ReasonRequired, Status
from mandate_svc.domain.preconditions import Customer, MandateRequest, PreconditionFailed
from mandate_svc.service_layer import mandates as uc

Tenant = Annotated[TenantPrincipal, Depends(require_scope("erp", "operator"))]

# --- models -------------------------------------------------------------------------------------

_CUSTOMER_EXAMPLE: dict[str, Any] = {
    "number": "C-1042",
    "name": "An Peeters",
    "email": "an.peeters@example.be",
    "mobile": "+32470123456",
    "iban": "BE16645348971174",
    "bic": "JVBABE22",
    "language": "nl",
    "address": "Kerkstraat 1",
    "zip": "9000",
    "city": "Gent",
    "country": "BE",
}


class CustomerIn(BaseModel):
    number: str = Field(min_length=1, max_length=50, description="The ERP's customer number")
    name: str | None = Field(None, max_length=140, description="Debtor's name (a person)")
    company_name: str | None = Field(None, max_length=140, description="Company name (required for B2B)")
    email: str | None = Field(None, max_length=254)
    mobile: str | None = Field(None, max_length=32, description="Mobile number, international (+32...)")
    iban: str | None = Field(None, max_length=42)
    bic: str | None = Field(None, max_length=11)
    language: str | None = Field(None, description="en, fr, nl, de, pt, es or it")
    address: str | None = Field(None, max_length=140)
    zip: str | None = Field(None, max_length=16)
    city: str | None = Field(None, max_length=70)
    country: str | None = Field(None, description="ISO 3166 alpha-2, e.g. BE")

    model_config = {"json_schema_extra": {"examples": [_CUSTOMER_EXAMPLE]}}


class MandateCreate(BaseModel):
    customer: CustomerIn
    scheme: Literal["CORE", "B2B"] = Field("CORE", description="B2B only for companies")
    delivery: Literal["email", "sms", "link"] = Field(
        description="email: Twikey mails the invite; sms: Twikey texts it (needs mobile, IBAN, BIC); "
        "link: only the sign URL is returned, the ERP hands it out"
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"customer": _CUSTOMER_EXAMPLE, "scheme": "CORE", "delivery": "email"},
                {
                    "customer": {"number": "C-7", "company_name": "Bakkerij Janssens BV", "email": "fin@janssens.be"},
                    "scheme": "B2B",
                    "delivery": "link",
                },
            ]
        }
    }


class MandateCustomer(BaseModel):
    number: str
    name: str | None
    company_name: str | None
    email: str | None
    mobile: str | None
    language: str | None
    address: str | None
    zip: str | None
    city: str | None
    country: str | None


class CommandError(BaseModel):
    command: str
    code: str
    message: str
    at: str


class MandateOut(BaseModel):
    id: str
    mandate_number: str | None = Field(description="Twikey's mandate reference (MndtId)")
    status: Status
    pending_action: str | None = Field(description="an ERP command Twikey has not confirmed yet")
    scheme: str
    delivery: str | None
    sign_url: str | None
    customer: MandateCustomer
    iban: str | None
    bic: str | None
    max_amount_cents: int | None = Field(description="the debtor's own maximum per collection; null = none")
    signature_date: date | None
    sign_method: str | None
    sign_place: str | None
    signer: str | None
    contract_number: str | None
    reason: str | None
    last_command_error: CommandError | None
    collectable: bool
    version: int
    created_at: datetime
    updated_at: datetime
    signed_at: datetime | None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "5d0c4f57-2b8e-4a56-9e0b-1f1c3f2f9a10",
                    "mandate_number": "SBX1M00000042",
                    "status": "active",
                    "pending_action": None,
                    "scheme": "CORE",
                    "delivery": "email",
                    "sign_url": "https://twikey.to/koppel/xlBF",
                    "customer": {**_CUSTOMER_EXAMPLE, "iban": None, "bic": None},
                    "iban": "BE16645348971174",
                    "bic": "JVBABE22",
                    "max_amount_cents": 50000,
                    "signature_date": "2026-01-05",
                    "sign_method": "itsme",
                    "sign_place": "Gent",
                    "signer": "An Peeters",
                    "contract_number": "C-1042-1",
                    "reason": None,
                    "last_command_error": None,
                    "collectable": True,
                    "version": 2,
                    "created_at": "2026-01-04T10:00:00Z",
                    "updated_at": "2026-01-05T09:59:12Z",
                    "signed_at": "2026-01-05T09:59:14Z",
                }
            ]
        }
    }


class MandatePage(BaseModel):
    items: list[MandateOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class MandateStats(BaseModel):
    by_status: dict[str, int] = Field(description="status → number of mandates (statuses without any left out)")
    oldest_created_at: dict[str, datetime] = Field(description="status → when the oldest mandate in it was created")


class HistoryItem(BaseModel):
    type: str = Field(description="the event it published (mandate.signed), or the command sent to Twikey")
    occurred_at: datetime
    status: str | None = Field(description="the mandate's status after it (events only)")
    action: str | None = Field(description="what Twikey was asked to do (commands only)")
    reason: str | None


class MandateHistory(BaseModel):
    items: list[HistoryItem] = Field(description="oldest first")


class ActionIn(BaseModel):
    reason: str | None = Field(None, max_length=140)

    model_config = {"json_schema_extra": {"examples": [{"reason": "customer asked to pause"}]}}


class CustomerMandates(BaseModel):
    customer_number: str
    collectable: bool = Field(description="an active mandate exists: invoices can be collected now")
    mandate: MandateOut | None = Field(description="the mandate to collect on (most recently signed active)")
    max_amount_cents: int | None = Field(description="that mandate's debtor limit per collection; null = none")
    mandates: list[MandateOut]


def to_out(m: Mandate) -> MandateOut:
    return MandateOut(
        id=m.id,
        mandate_number=m.mandate_number,
        status=m.status,
        pending_action=m.pending_action,
        scheme=m.scheme,
        delivery=m.delivery,
        sign_url=m.sign_url,
        customer=MandateCustomer(
            number=m.customer_number, **{f: getattr(m, f) for f in DEBTOR_FIELDS if f != "customer_number"}
        ),
        iban=m.iban,
        bic=m.bic,
        max_amount_cents=m.max_amount_cents,
        signature_date=m.signature_date,
        sign_method=m.sign_method,
        sign_place=m.sign_place,
        signer=m.signer,
        contract_number=m.contract_number,
        reason=m.reason,
        last_command_error=CommandError(**m.last_error) if m.last_error else None,
        collectable=m.collectable,
        version=m.version,
        created_at=m.created_at,
        updated_at=m.updated_at,
        signed_at=m.signed_at,
    )


# --- errors -------------------------------------------------------------------------------------

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or invalid tenant token", **_PROBLEM},
    404: {"description": "no such mandate for this tenant", **_PROBLEM},
}


def _not_found(mandate_id: str) -> Problem:
    return Problem(404, "mandate_not_found", f"no mandate {mandate_id}")


def _correlation(request: Request) -> str | None:
    return getattr(request.state, "correlation_id", None)


# --- routes -------------------------------------------------------------------------------------

mandates_router = APIRouter(prefix="/v1/mandates", tags=["mandates"])
customers_router = APIRouter(prefix="/v1/customers", tags=["customers"])


@mandates_router.post(
    "",
    status_code=201,
    response_model=MandateOut,
    summary="Prepare a mandate and get the sign URL",
    responses={
        **_ERRORS,
        409: {
            "description": "Idempotency-Key reused with another body (`idempotency_key_reused`), or a request "
            "with this key is still being handled (`request_in_progress`, with Retry-After)",
            **_PROBLEM,
        },
        422: {"description": "a precondition failed (errors name field and rule), or Twikey refused", **_PROBLEM},
        503: {"description": "Twikey (or sync-svc) unavailable; retry with the same Idempotency-Key", **_PROBLEM},
    },
)
async def create_mandate(
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    deps: Deps,
    principal: Tenant,
    body: MandateCreate,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="the same key and body return the same mandate; another body with it is a 409",
        ),
    ] = None,
) -> MandateOut | JSONResponse:
    c = body.customer
    domain_request = MandateRequest(customer=Customer(**c.model_dump()), scheme=body.scheme, delivery=body.delivery)
    settings = runtime.settings
    policy = uc.KeyPolicy(
        lease=timedelta(seconds=settings.idempotency_lease_seconds),
        wait=timedelta(seconds=settings.idempotency_wait_seconds),
    )
    try:
        mandate, replayed = await uc.prepare_mandate(
            runtime.uow,
            deps.sync,
            str(principal.tenant_id),
            domain_request,
            uc.request_hash(body.model_dump(mode="json")),
            idempotency_key or None,
            _correlation(request),
            policy,
        )
    except PreconditionFailed as exc:
        raise Problem(
            422,
            "precondition_failed",
            str(exc),
            "Mandate preconditions not met",
            errors=[v.as_dict() for v in exc.violations],
        ) from exc
    except uc.IdempotencyConflict as exc:
        raise Problem(
            409, "idempotency_key_reused", "this Idempotency-Key was used with a different request body"
        ) from exc
    except uc.RequestInProgress as exc:
        busy = problem_response(
            request,
            409,
            "request_in_progress",
            "a request with this Idempotency-Key is still being handled; retry after a moment with the same key",
            mandate_id=exc.mandate_id,
        )
        busy.headers["Retry-After"] = str(exc.retry_after)
        return busy
    except uc.InviteRefusedByTwikey as exc:
        refused = exc.refused
        field = f"customer.{refused.field}" if refused.field and "." not in refused.field else refused.field
        raise Problem(
            422,
            refused.code,
            f"Twikey refused the invite: {refused.detail}",
            "Twikey refused the mandate",
            errors=[{"field": field or "body", "rule": refused.code, "message": refused.detail}],
        ) from exc
    except uc.InviteUnavailable as exc:
        extra = {"mandate_id": exc.mandate_id} if exc.mandate_id else {}
        raise Problem(
            503,
            "twikey_unavailable",
            "Twikey could not be reached; retry later" + (" with the same Idempotency-Key" if exc.mandate_id else ""),
            **extra,
        ) from exc
    if replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/mandates/{mandate.id}"
    return to_out(mandate)


@mandates_router.get("", response_model=MandatePage, summary="List mandates", responses=_ERRORS)
async def list_mandates(
    uow: UowDep,
    principal: Tenant,
    status: Annotated[list[Status] | None, Query(description="one or more statuses")] = None,
    customer_number: Annotated[str | None, Query(max_length=50)] = None,
    scheme: Annotated[Literal["CORE", "B2B"] | None, Query()] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="a customer or mandate number, or part of a name"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> MandatePage:
    try:
        page = await repo.list_page(
            uow.session,
            str(principal.tenant_id),
            statuses=[s.value for s in status] if status else None,
            customer_number=customer_number,
            scheme=scheme,
            search=q,
            limit=limit,
            cursor=cursor,
        )
    except ValueError as exc:
        raise Problem(
            422,
            "validation_error",
            "cursor: not a cursor from this API",
            "Invalid request",
            errors=[{"field": "cursor", "rule": "cursor_invalid", "message": "not a cursor from this API"}],
        ) from exc
    return MandatePage(items=[to_out(m) for m in page.items], next_cursor=page.next_cursor)


@mandates_router.get("/stats", response_model=MandateStats, summary="How many mandates are in each status")
async def mandate_stats(uow: UowDep, principal: Tenant) -> MandateStats:
    counted = await repo.count_by_status(uow.session, str(principal.tenant_id))
    return MandateStats(
        by_status={status: count for status, (count, _) in counted.items()},
        oldest_created_at={status: oldest for status, (_, oldest) in counted.items()},
    )


@mandates_router.get(
    "/{mandate_id}/history", response_model=MandateHistory, summary="What happened to a mandate", responses=_ERRORS
)
async def mandate_history(mandate_id: str, uow: UowDep, principal: Tenant) -> MandateHistory:
    try:
        await uc.get_mandate(uow, str(principal.tenant_id), mandate_id)
    except uc.NotFound as exc:
        raise _not_found(mandate_id) from exc
    rows = await repo.history(uow.session, str(principal.tenant_id), mandate_id)
    return MandateHistory(
        items=[
            HistoryItem(
                type=r["type"],
                occurred_at=r["occurred_at"],
                status=r["status"],
                action=r["action"],
                reason=r["reason"],
            )
            for r in rows
        ]
    )


@mandates_router.get("/{mandate_id}", response_model=MandateOut, summary="Get a mandate", responses=_ERRORS)
async def get_mandate(mandate_id: str, uow: UowDep, principal: Tenant) -> MandateOut:
    try:
        return to_out(await uc.get_mandate(uow, str(principal.tenant_id), mandate_id))
    except uc.NotFound as exc:
        raise _not_found(mandate_id) from exc


async def _act(
    request: Request, uow: UowDep, principal: TenantPrincipal, mandate_id: str, action: str, reason: str | None
) -> MandateOut:
    try:
        m = await uc.act_on_mandate(uow, str(principal.tenant_id), mandate_id, action, reason, _correlation(request))
    except uc.NotFound as exc:
        raise _not_found(mandate_id) from exc
    except InvalidState as exc:
        raise Problem(409, "mandate_invalid_state", str(exc), mandate_status=exc.status.value) from exc
    except ReasonRequired as exc:
        raise Problem(
            422,
            "validation_error",
            "reason: a signed mandate is cancelled with a reason",
            "Invalid request",
            errors=[{"field": "reason", "rule": "required_for_signed_mandate", "message": str(exc)}],
        ) from exc
    return to_out(m)


_ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"description": "the mandate's status does not allow this", **_PROBLEM},
}


@mandates_router.post(
    "/{mandate_id}/remind",
    status_code=202,
    response_model=MandateOut,
    summary="Resend the invite of a prepared mandate",
    responses=_ACTION_ERRORS,
)
async def remind(mandate_id: str, request: Request, uow: UowDep, principal: Tenant) -> MandateOut:
    return await _act(request, uow, principal, mandate_id, "remind", None)


@mandates_router.post(
    "/{mandate_id}/suspend",
    response_model=MandateOut,
    summary="Suspend an active mandate (nothing is collected until resumed)",
    responses=_ACTION_ERRORS,
)
async def suspend(
    mandate_id: str, request: Request, uow: UowDep, principal: Tenant, body: Annotated[ActionIn | None, Body()] = None
) -> MandateOut:
    return await _act(request, uow, principal, mandate_id, "suspend", body.reason if body else None)


@mandates_router.post(
    "/{mandate_id}/resume", response_model=MandateOut, summary="Resume a suspended mandate", responses=_ACTION_ERRORS
)
async def resume(
    mandate_id: str, request: Request, uow: UowDep, principal: Tenant, body: Annotated[ActionIn | None, Body()] = None
) -> MandateOut:
    return await _act(request, uow, principal, mandate_id, "resume", body.reason if body else None)


@mandates_router.delete(
    "/{mandate_id}",
    response_model=MandateOut,
    summary="Cancel a signed mandate (reason required) or delete a prepared one",
    responses={**_ACTION_ERRORS, 422: {"description": "a signed mandate needs a reason", **_PROBLEM}},
)
async def delete_mandate(
    mandate_id: str,
    request: Request,
    uow: UowDep,
    principal: Tenant,
    reason: Annotated[str | None, Query(max_length=140, description="required for a signed mandate")] = None,
) -> MandateOut:
    return await _act(request, uow, principal, mandate_id, "cancel", reason)


@customers_router.get(
    "/{customer_number}/mandates",
    response_model=CustomerMandates,
    summary="Is this customer collectable now, with which mandate and maximum amount",
    responses={401: _ERRORS[401]},
)
async def customer_view(customer_number: str, uow: UowDep, principal: Tenant) -> CustomerMandates:
    all_mandates = await uc.customer_mandates(uow, str(principal.tenant_id), customer_number)
    best = uc.collectable_mandate(all_mandates)
    return CustomerMandates(
        customer_number=customer_number,
        collectable=best is not None,
        mandate=to_out(best) if best else None,
        max_amount_cents=best.max_amount_cents if best else None,
        mandates=[to_out(m) for m in all_mandates],
    )


routers = [mandates_router, customers_router]
