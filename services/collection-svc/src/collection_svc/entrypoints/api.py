"""collection-svc's REST API for ERP systems (tenant token): the collection policy, invoices and
subscriptions. Thin: parse, call a use case, shape the answer."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response, status
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from collection_svc.dependencies import Deps
from collection_svc.domain.invoices import InvoiceInput
from collection_svc.domain.policy import DEFAULT_RETRY_R_CODES, CollectionPolicy
from collection_svc.entrypoints.parked import router as parked_router
from collection_svc.service_layer import invoices as invoice_cases
from collection_svc.service_layer import policies as policy_cases
from collection_svc.service_layer import stats as stats_cases
from koppel_shared.deps import Principal, UowDep


# --------------------------------------------------------------------------- models
def _iso_date(value: Any) -> Any:
    """JSON has no date type: a date is a "YYYY-MM-DD" string (not a number, not a timestamp)."""
    if isinstance(value, date) or (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
        return value
    raise PydanticCustomError("iso_date", "a date as a YYYY-MM-DD string")


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
# a JSON integer: true, 49.99, 4999.0 and "4999" are refused (int_type), never read as cents
Cents = Annotated[int, Field(strict=True)]

TEXT_RULES = (
    "Only the SEPA characters a-z A-Z 0-9 / - ? : ( ) . , ' + and space (422 `sepa_characters` with the "
    "position and code point of the first other one), unless the policy's `transliterate_text` is on"
)
DATE_RULES = "A YYYY-MM-DD string"


class PolicyIn(BaseModel):
    auto_collect: bool = Field(True, description="Collect invoices automatically (else only by hand)")
    lead_days: int = Field(3, description="Collect this many days before the due date")
    max_amount_cents: int | None = Field(None, description="Tenant maximum per invoice (as at Twikey); null = none")
    notify_debtor: bool = Field(True, description="Pre-notify the debtor before each collection")
    paylink_when_no_mandate: bool = Field(True, description="Offer a Twikey pay link when there is no mandate")
    retry_r_codes: list[str] = Field(
        list(DEFAULT_RETRY_R_CODES), description="R-codes retried automatically (never MD01, MD06, MS02, AC04, …)"
    )
    retry_after_days: int = Field(5, description="Days between a failed attempt and its retry")
    max_attempts: int = Field(2, description="Attempts in total (2 = one retry)")
    transliterate_text: bool = Field(
        False,
        description="Transliterate texts for Twikey (description, customer name) into the SEPA character set "
        "(ë → e, ß → ss, € → EUR; what has no SEPA form is dropped) instead of refusing them",
    )

    model_config = {
        "strict": True,  # JSON types only: true is not 1, "yes" is not true
        "json_schema_extra": {
            "examples": [
                {
                    "auto_collect": True,
                    "lead_days": 3,
                    "max_amount_cents": 500000,
                    "notify_debtor": True,
                    "paylink_when_no_mandate": True,
                    "retry_r_codes": ["AM04"],
                    "retry_after_days": 5,
                    "max_attempts": 2,
                    "transliterate_text": False,
                }
            ]
        },
    }


class PolicyOut(PolicyIn):
    version: int = Field(description="0 = the defaults, never set")

    model_config = ConfigDict(strict=False)


class InvoiceIn(BaseModel):
    invoice_number: str = Field(
        min_length=1,
        max_length=100,
        description="Unique among the tenant's live invoices (a withdrawn one frees its number). Spaces around "
        "it are dropped; not blank (`not_blank`), at most 40 characters (`twinfield_length`: Twinfield's "
        "invoicenumber). Without a description the statement says 'Invoice <number>', so then its "
        "characters follow the SEPA rule too",
    )
    customer_number: str = Field(
        min_length=1, max_length=100, description="Not blank, at most 50 characters (Twikey's customerNumber)"
    )
    customer_name: str | None = Field(
        None,
        max_length=200,
        description=f"The pay link's first and last name (split at the first space, ≤ 50 each). {TEXT_RULES}",
    )
    customer_email: str | None = Field(None, max_length=320, description="At most 70 characters (Twikey)")
    amount_cents: Cents = Field(
        description="Amount in euro cents, a JSON integer from 1 to 99,999,999,999 (€999,999,999.99)"
    )
    currency: str = Field("EUR", description="EUR only (SEPA)")
    invoice_date: IsoDate = Field(description=f"{DATE_RULES}, at most 366 days before or after today")
    due_date: IsoDate = Field(description=f"{DATE_RULES}, from invoice_date to 366 days after it")
    description: str | None = Field(
        None, max_length=140, description=f"On the debtor's bank statement (≤ 140). {TEXT_RULES}"
    )
    subscription_reference: str | None = Field(None, max_length=100)

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "invoice_number": "INV-2026-0001",
                    "customer_number": "C-1000",
                    "customer_name": "An Peeters",
                    "customer_email": "an@example.be",
                    "amount_cents": 4999,
                    "currency": "EUR",
                    "invoice_date": "2026-02-01",
                    "due_date": "2026-02-15",
                    "description": "Invoice INV-2026-0001",
                    "subscription_reference": None,
                }
            ]
        }
    }


class InvoicePatch(BaseModel):
    """A correction: only the fields given change; the invoice number and customer never do."""

    amount_cents: Cents | None = Field(None, description="As when posting")
    invoice_date: IsoDate | None = None
    due_date: IsoDate | None = None
    description: str | None = Field(None, max_length=140, description="null removes it")
    customer_name: str | None = Field(None, max_length=200)
    customer_email: str | None = Field(None, max_length=320)

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {"examples": [{"amount_cents": 4500, "description": "Invoice INV-2026-0001"}]},
    }


class InvoiceCustomer(BaseModel):
    number: str
    name: str | None
    email: str | None


class CollectionOut(BaseModel):
    collection_id: str
    attempt: int
    method: Literal["direct_debit", "paylink"]
    status: str = Field(description="scheduled|submitted|paid|failed|reversed|skipped|withdrawn")
    reason_code: str | None = Field(
        description="why, as a stable code: scheduled due|subscription|manual|retry; skipped no_mandate|"
        "mandate_not_active|mandate_suspended|mandate_cancelled|above_tenant_limit|above_mandate_limit|"
        "auto_collect_off|subscription_manual; submitted sent|accepted; paid paid|paylink; failed bank_error "
        "or Twikey's refusal code (err_…); reversed; withdrawn withdrawn|superseded|paid_by_paylink"
    )
    reason: str | None = Field(description="the same, in words")
    collect_on: date | None
    requested_date: date | None
    mandate_number: str | None
    payment_kind: Literal["transaction", "paylink"] = Field(
        description="what the payment is at Twikey; with twikey_id its identity (the two kinds are numbered apart)"
    )
    twikey_id: str | None = Field(description="the Twikey transaction's or pay link's id")
    twikey_transaction_id: str | None = Field(description="the Twikey transaction (direct debits only)")
    r_code: str | None
    r_code_meaning: str | None
    submitted_at: datetime | None
    paid_at: datetime | None
    version: int
    updated_at: datetime


class PayLinkOut(BaseModel):
    state: str = Field(description="requested|created|started|pending|paid|declined|expired")
    url: str | None
    paylink_id: str | None
    mandate_number: str | None


class InvoiceOut(BaseModel):
    id: str
    invoice_number: str
    customer: InvoiceCustomer
    amount_cents: int
    currency: str
    invoice_date: date
    due_date: date
    description: str | None
    subscription_reference: str | None
    status: str
    collection: CollectionOut | None = Field(description="the current attempt")
    attempts: list[CollectionOut] = Field(description="every attempt (in lists: the current one only)")
    pay_link: PayLinkOut | None
    withdrawn_at: datetime | None
    created_at: datetime

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "0b6f8f5e-3d1f-4d57-9a53-1e1f1b9c2a10",
                    "invoice_number": "INV-2026-0001",
                    "customer": {"number": "C-1000", "name": "An Peeters", "email": "an@example.be"},
                    "amount_cents": 4999,
                    "currency": "EUR",
                    "invoice_date": "2026-02-01",
                    "due_date": "2026-02-15",
                    "description": "Invoice INV-2026-0001",
                    "subscription_reference": None,
                    "status": "scheduled",
                    "collection": {
                        "collection_id": "7d2b1c7e-5f0a-4e8e-8a53-3c4d5e6f7a8b",
                        "attempt": 1,
                        "method": "direct_debit",
                        "status": "scheduled",
                        "reason_code": "due",
                        "reason": "scheduled for 2026-02-12 (3 days before the due date)",
                        "collect_on": "2026-02-12",
                        "requested_date": "2026-02-12",
                        "mandate_number": "KOP0001",
                        "payment_kind": "transaction",
                        "twikey_id": None,
                        "twikey_transaction_id": None,
                        "r_code": None,
                        "r_code_meaning": None,
                        "submitted_at": None,
                        "paid_at": None,
                        "version": 1,
                        "updated_at": "2026-02-01T09:00:00Z",
                    },
                    "attempts": [],
                    "pay_link": None,
                    "withdrawn_at": None,
                    "created_at": "2026-02-01T09:00:00Z",
                }
            ]
        }
    }


class StatusFigures(BaseModel):
    count: int
    oldest_created_at: datetime = Field(
        description="since when the longest-waiting invoice is in this status (its attempt's creation; open: posting)"
    )


class DayFigures(BaseModel):
    day: date
    collected: int = Field(description="direct debits sent to Twikey that day")
    collected_cents: int
    paid: int = Field(description="collections paid that day")
    paid_cents: int


class InvoiceStats(BaseModel):
    by_status: dict[str, StatusFigures] = Field(description="open|scheduled|submitted|paid|failed|… → figures")
    parked_updates: int = Field(description="Twikey transaction updates that failed to apply, parked for an operator")


class InvoiceDays(BaseModel):
    per_day: list[DayFigures] = Field(description="oldest day first, days without any included")


class InvoicePage(BaseModel):
    items: list[InvoiceOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class SubscriptionIn(BaseModel):
    reference: str = Field(min_length=1, max_length=100)
    customer_number: str = Field(min_length=1, max_length=100)
    description: str | None = Field(None, max_length=200)
    collect_automatically: bool = Field(True, description="Claim its invoices as soon as they are posted")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "reference": "SUB-42",
                    "customer_number": "C-1000",
                    "description": "Monthly plan",
                    "collect_automatically": True,
                }
            ]
        }
    }


class SubscriptionPatch(BaseModel):
    description: str | None = Field(None, max_length=200)
    collect_automatically: bool | None = None
    active: bool | None = None

    model_config = {"json_schema_extra": {"examples": [{"collect_automatically": False}]}}


class SubscriptionOut(BaseModel):
    id: str
    reference: str
    customer_number: str
    description: str | None
    collect_automatically: bool
    active: bool
    created_at: datetime
    updated_at: datetime


# --------------------------------------------------------------------------- policy
policy_router = APIRouter(prefix="/v1/collection-policy", tags=["collection policy"])


@policy_router.get("", response_model=PolicyOut, summary="The tenant's collection policy")
async def get_policy(principal: Principal, uow: UowDep) -> dict[str, Any]:
    return await policy_cases.get_policy(uow.session, principal.tenant_id)


@policy_router.put("", response_model=PolicyOut, summary="Replace the tenant's collection policy")
async def put_policy(body: PolicyIn, principal: Principal, uow: UowDep, deps: Deps) -> dict[str, Any]:
    values = body.model_dump()
    values["retry_r_codes"] = tuple(values["retry_r_codes"])
    view = await policy_cases.put_policy(uow, principal.tenant_id, CollectionPolicy(**values), deps.clock())
    await uow.commit()
    return view


# --------------------------------------------------------------------------- invoices
invoice_router = APIRouter(prefix="/v1/invoices", tags=["invoices"])


@invoice_router.post(
    "",
    response_model=InvoiceOut,
    status_code=status.HTTP_201_CREATED,
    summary="Post an invoice; its collection is decided at once",
    responses={200: {"description": "the same invoice was posted before (same key or same data)"}},
)
async def post_invoice(
    body: InvoiceIn,
    principal: Principal,
    uow: UowDep,
    deps: Deps,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> dict[str, Any]:
    data = InvoiceInput(**body.model_dump())
    posted = await invoice_cases.post_invoice(uow, principal.tenant_id, data, idempotency_key, deps.clock())
    await uow.commit()
    if not posted.created:
        response.status_code = status.HTTP_200_OK
    return await invoice_cases.get_invoice(uow.session, principal.tenant_id, posted.invoice_id)


@invoice_router.get("", response_model=InvoicePage, summary="List invoices (oldest first), with filters")
async def list_invoices(
    principal: Principal,
    uow: UowDep,
    status_: Annotated[str | None, Query(alias="status")] = None,
    customer_number: str | None = None,
    invoice_number: str | None = None,
    subscription_reference: str | None = None,
    due_from: date | None = None,
    due_to: date | None = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            description="an invoice or customer number, part of the customer's name, a mandate number or Twikey id",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    filters = invoice_cases.InvoiceFilter(
        status_, customer_number, invoice_number, subscription_reference, due_from, due_to, q
    )
    items, next_cursor = await invoice_cases.list_invoices(uow.session, principal.tenant_id, filters, limit, cursor)
    return {"items": items, "next_cursor": next_cursor}


@invoice_router.get("/stats", response_model=InvoiceStats, summary="Invoices by status; parked Twikey updates")
async def get_invoice_stats(principal: Principal, uow: UowDep) -> dict[str, Any]:
    return await stats_cases.invoice_counts(uow.session, principal.tenant_id)


@invoice_router.get("/stats/per-day", response_model=InvoiceDays, summary="Collected and paid per day")
async def get_invoice_days(
    principal: Principal,
    uow: UowDep,
    deps: Deps,
    days: Annotated[int, Query(ge=1, le=90, description="how many days back, today included")] = 30,
) -> dict[str, Any]:
    today = deps.clock().astimezone(UTC).date()
    return await stats_cases.invoices_per_day(uow.session, principal.tenant_id, today, days)


@invoice_router.get("/{invoice_id}", response_model=InvoiceOut, summary="An invoice and why it is (not) collected")
async def get_invoice(invoice_id: uuid.UUID, principal: Principal, uow: UowDep) -> dict[str, Any]:
    return await invoice_cases.get_invoice(uow.session, principal.tenant_id, invoice_id)


@invoice_router.delete(
    "/{invoice_id}",
    response_model=InvoiceOut,
    summary="Withdraw an invoice before its collection is submitted (409 after)",
)
async def withdraw_invoice(invoice_id: uuid.UUID, principal: Principal, uow: UowDep, deps: Deps) -> dict[str, Any]:
    await invoice_cases.withdraw_invoice(uow, principal.tenant_id, invoice_id, deps.clock())
    await uow.commit()
    return await invoice_cases.get_invoice(uow.session, principal.tenant_id, invoice_id)


@invoice_router.patch(
    "/{invoice_id}",
    response_model=InvoiceOut,
    summary="Correct an invoice under its own number (e.g. after Twikey refused it)",
    description="While none of its collections is at Twikey or paid and no pay link is in play (409 "
    "`collection_in_progress`, `already_paid`, `pay_link_open`; `invoice_withdrawn`). The rules of posting "
    "apply (422). The open collection is decided again with the new facts; after a failed attempt a new "
    "attempt is decided at once.",
)
async def correct_invoice(
    invoice_id: uuid.UUID, body: InvoicePatch, principal: Principal, uow: UowDep, deps: Deps
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    await invoice_cases.correct_invoice(uow, principal.tenant_id, invoice_id, changes, deps.clock())
    await uow.commit()
    return await invoice_cases.get_invoice(uow.session, principal.tenant_id, invoice_id)


@invoice_router.post(
    "/{invoice_id}/collect",
    response_model=InvoiceOut,
    summary="Collect now, by hand (mandate and limits still apply)",
)
async def collect_invoice(invoice_id: uuid.UUID, principal: Principal, uow: UowDep, deps: Deps) -> dict[str, Any]:
    await invoice_cases.collect_now(uow, principal.tenant_id, invoice_id, deps.clock())
    await uow.commit()
    return await invoice_cases.get_invoice(uow.session, principal.tenant_id, invoice_id)


# --------------------------------------------------------------------------- subscriptions
subscription_router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])


@subscription_router.post(
    "", response_model=SubscriptionOut, status_code=status.HTTP_201_CREATED, summary="Create a subscription"
)
async def create_subscription(
    body: SubscriptionIn, principal: Principal, uow: UowDep, deps: Deps, response: Response
) -> dict[str, Any]:
    view, created = await policy_cases.create_subscription(
        uow,
        principal.tenant_id,
        body.reference,
        body.customer_number,
        body.description,
        body.collect_automatically,
        deps.clock(),
    )
    await uow.commit()
    if not created:
        response.status_code = status.HTTP_200_OK
    return view


@subscription_router.get("", response_model=list[SubscriptionOut], summary="List subscriptions")
async def list_subscriptions(
    principal: Principal, uow: UowDep, customer_number: str | None = None
) -> list[dict[str, Any]]:
    return await policy_cases.list_subscriptions(uow.session, principal.tenant_id, customer_number)


@subscription_router.get("/{subscription_id}", response_model=SubscriptionOut, summary="A subscription")
async def get_subscription(subscription_id: uuid.UUID, principal: Principal, uow: UowDep) -> dict[str, Any]:
    return policy_cases.subscription_view(
        await policy_cases.get_subscription(uow.session, principal.tenant_id, subscription_id)
    )


@subscription_router.patch(
    "/{subscription_id}", response_model=SubscriptionOut, summary="Change or deactivate a subscription"
)
async def patch_subscription(
    subscription_id: uuid.UUID, body: SubscriptionPatch, principal: Principal, uow: UowDep, deps: Deps
) -> dict[str, Any]:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None or k == "description"}
    view = await policy_cases.update_subscription(uow, principal.tenant_id, subscription_id, changes, deps.clock())
    await uow.commit()
    return view


routers = [policy_router, invoice_router, subscription_router, parked_router]
