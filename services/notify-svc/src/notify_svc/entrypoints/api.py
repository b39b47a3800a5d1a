"""notify-svc's REST API: webhook endpoints, the delivery log and redelivery, the event feed.

Routes are thin: parse, call a use case with the caller's tenant, shape the answer.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BaseModel, Field

from koppel_shared.deps import Principal, UowDep
from koppel_shared.service import Runtime
from koppel_shared.web.errors import Problem
from notify_svc.adapters.network import system_resolver
from notify_svc.dependencies import Dependencies, Deps, RuntimeDep
from notify_svc.service_layer import deliveries as delivery_cases
from notify_svc.service_layer import endpoints as endpoint_cases
from notify_svc.service_layer.feed import read_feed
from notify_svc.settings import Settings

router = APIRouter(tags=["webhooks"])

_EXAMPLE_ENDPOINT: dict[str, Any] = {
    "id": "6f1c2a8e-4b7d-4e2a-9c61-0d7b3e5f9a10",
    "url": "https://erp.example.be/koppel/webhooks",
    "description": "production ERP",
    "event_types": ["mandate.*", "collection.paid", "collection.failed"],
    "enabled": True,
    "status": "enabled",
    "disabled_reason": None,
}


def _guard(runtime: Runtime[Settings], deps: Dependencies) -> endpoint_cases.Guard:
    return endpoint_cases.Guard(runtime.settings.url_policy, deps.resolver or system_resolver)


class EndpointIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048, description="https URL that receives the webhooks")
    event_types: list[str] = Field(
        default_factory=lambda: ["*"], description="patterns: '*', 'mandate.*', or an exact type"
    )
    enabled: bool = True
    description: str | None = Field(default=None, max_length=500)

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"url": "https://erp.example.be/koppel/webhooks", "event_types": ["mandate.*", "collection.*"]}
            ]
        }
    }


class EndpointPatch(BaseModel):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    event_types: list[str] | None = None
    enabled: bool | None = None
    description: str | None = Field(default=None, max_length=500)

    model_config = {"json_schema_extra": {"examples": [{"enabled": True}, {"event_types": ["collection.*"]}]}}


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    status: Literal["enabled", "disabled"]
    disabled_reason: str | None
    disabled_at: datetime | None
    consecutive_failures: int
    failing_since: datetime | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    previous_secret_until: datetime | None = Field(
        description="while set, webhooks are signed with the previous secret too"
    )
    created_at: datetime
    updated_at: datetime

    model_config = {"json_schema_extra": {"examples": [_EXAMPLE_ENDPOINT]}}


class EndpointCreated(EndpointOut):
    secret: str = Field(description="the signing secret (Standard Webhooks, whsec_…): shown only now")

    model_config = {
        "json_schema_extra": {"examples": [{**_EXAMPLE_ENDPOINT, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]}
    }


class EndpointList(BaseModel):
    data: list[EndpointOut]


class RotateIn(BaseModel):
    grace_seconds: float | None = Field(
        default=None, ge=0, le=7 * 24 * 3600, description="how long the old secret keeps signing (default 24 h)"
    )


class SecretOut(BaseModel):
    secret: str
    previous_secret_valid_until: datetime | None

    model_config = {
        "json_schema_extra": {
            "examples": [{"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "previous_secret_valid_until": None}]
        }
    }


class RedeliverIn(BaseModel):
    event_id: uuid.UUID | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"event_id": "1b7a3c4d-2e5f-4a6b-8c7d-9e0f1a2b3c4d"},
                {"since": "2025-03-01T00:00:00Z", "until": "2025-03-02T00:00:00Z"},
            ]
        }
    }


class RedeliverOut(BaseModel):
    queued: int


class AttemptOut(BaseModel):
    attempt: int
    started_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    response_excerpt: str | None


class DeliveryOut(BaseModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: Literal["pending", "succeeded", "failed", "cancelled"]
    manual: bool
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    completed_at: datetime | None
    created_at: datetime
    attempt_log: list[AttemptOut]


class DeliveryList(BaseModel):
    data: list[DeliveryOut]
    next_before: str | None = Field(description="pass as ?before= for the next (older) page")


class FeedOut(BaseModel):
    data: list[dict[str, Any]] = Field(description="events, the same JSON as the webhook bodies")
    next_cursor: str = Field(description="pass as ?after= next time; also when data is empty")
    has_more: bool

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "data": [
                        {
                            "id": "1b7a3c4d-2e5f-4a6b-8c7d-9e0f1a2b3c4d",
                            "type": "mandate.signed",
                            "version": 1,
                            "tenant_id": "0b0c2e9a-1d2f-4e3a-8b7c-6d5e4f3a2b1c",
                            "occurred_at": "2025-03-01T10:00:00+00:00",
                            "correlation_id": "c0ffee",
                            "data": {"mandate_id": "…", "status": "active", "version": 3},
                        }
                    ],
                    "next_cursor": "evf1_MTI",
                    "has_more": False,
                }
            ]
        }
    }


# ---------------------------------------------------------------- endpoints


@router.post("/v1/webhook-endpoints", status_code=201, response_model=EndpointCreated)
async def create_endpoint(body: EndpointIn, principal: Principal, uow: UowDep, runtime: RuntimeDep, deps: Deps) -> Any:
    view, secret = await endpoint_cases.create_endpoint(
        uow,
        runtime.secrets,
        _guard(runtime, deps),
        principal.tenant_id,
        body.url,
        body.event_types,
        body.enabled,
        body.description,
    )
    await uow.commit()
    return {**view, "secret": secret}


@router.get("/v1/webhook-endpoints", response_model=EndpointList)
async def list_endpoints(
    principal: Principal, uow: UowDep, status: Literal["enabled", "disabled"] | None = None
) -> Any:
    enabled = None if status is None else status == "enabled"
    return {"data": await endpoint_cases.list_endpoints(uow, principal.tenant_id, enabled)}


@router.get("/v1/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
async def get_endpoint(endpoint_id: uuid.UUID, principal: Principal, uow: UowDep) -> Any:
    return await endpoint_cases.get_endpoint(uow, principal.tenant_id, endpoint_id)


@router.patch("/v1/webhook-endpoints/{endpoint_id}", response_model=EndpointOut)
async def update_endpoint(
    endpoint_id: uuid.UUID, body: EndpointPatch, principal: Principal, uow: UowDep, runtime: RuntimeDep, deps: Deps
) -> Any:
    view = await endpoint_cases.update_endpoint(
        uow, _guard(runtime, deps), principal.tenant_id, endpoint_id, body.model_dump(exclude_unset=True)
    )
    await uow.commit()
    return view


@router.delete("/v1/webhook-endpoints/{endpoint_id}", status_code=204)
async def delete_endpoint(endpoint_id: uuid.UUID, principal: Principal, uow: UowDep) -> Response:
    await endpoint_cases.delete_endpoint(uow, principal.tenant_id, endpoint_id)
    await uow.commit()
    return Response(status_code=204)


@router.post("/v1/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=SecretOut)
async def rotate_secret(
    endpoint_id: uuid.UUID, principal: Principal, uow: UowDep, runtime: RuntimeDep, body: RotateIn | None = None
) -> Any:
    grace = body.grace_seconds if body and body.grace_seconds is not None else None
    seconds = runtime.settings.secret_rotation_grace_seconds if grace is None else grace
    secret, until = await endpoint_cases.rotate_secret(
        uow, runtime.secrets, principal.tenant_id, endpoint_id, timedelta(seconds=seconds)
    )
    await uow.commit()
    return {"secret": secret, "previous_secret_valid_until": until}


@router.post("/v1/webhook-endpoints/{endpoint_id}/redeliver", status_code=202, response_model=RedeliverOut)
async def redeliver(endpoint_id: uuid.UUID, body: RedeliverIn, principal: Principal, uow: UowDep) -> Any:
    if body.event_id is None and body.since is None:
        raise Problem(422, "redeliver_what", "give event_id, or since (and optionally until)")
    if body.since and body.until and body.until <= body.since:
        raise Problem(422, "redeliver_range", "until must be after since")
    queued = await delivery_cases.redeliver(
        uow, principal.tenant_id, endpoint_id, event_id=body.event_id, since=body.since, until=body.until
    )
    return {"queued": queued}


# ---------------------------------------------------------------- the delivery log


@router.get("/v1/deliveries", response_model=DeliveryList)
async def list_deliveries(
    principal: Principal,
    uow: UowDep,
    endpoint: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
    status: Literal["pending", "succeeded", "failed", "cancelled"] | None = None,
    before: str | None = Query(default=None, pattern=r"^\d{1,19}$"),
    limit: int = Query(default=50, ge=1, le=200),
    type: str | None = Query(
        default=None,
        pattern=r"^[a-z_]+(\.[a-z_]+|\.\*)$",
        description="an event type (mandate.signed) or a family (mandate.*)",
    ),
) -> Any:
    if endpoint is not None:
        await endpoint_cases.get_endpoint(uow, principal.tenant_id, endpoint)  # 404 for another tenant's
    page, more = await delivery_cases.list_deliveries(
        uow,
        principal.tenant_id,
        endpoint_id=endpoint,
        event_id=event_id,
        status=status,
        before=int(before) if before else None,
        limit=limit,
        event_type=type,
    )
    return {"data": page, "next_before": str(more) if more else None}


@router.get("/v1/deliveries/{delivery_id}", response_model=DeliveryOut)
async def get_delivery(delivery_id: uuid.UUID, principal: Principal, uow: UowDep) -> Any:
    return await delivery_cases.get_delivery(uow, principal.tenant_id, delivery_id)


# ---------------------------------------------------------------- the event feed


@router.get(
    "/v1/events",
    response_model=FeedOut,
    tags=["events"],
    responses={
        400: {"description": "`invalid_cursor`: not a cursor this feed returned (crafted, or ahead of the feed)"}
    },
)
async def event_feed(
    principal: Principal,
    uow: UowDep,
    runtime: RuntimeDep,
    after: str | None = Query(default=None, max_length=100, description="the next_cursor of the previous page"),
    types: str | None = Query(default=None, description="comma-separated patterns, e.g. mandate.*,collection.paid"),
    limit: int | None = Query(default=None, ge=1),
) -> Any:
    settings = runtime.settings
    size = min(limit or settings.feed_default_limit, settings.feed_max_limit)
    patterns = [t.strip() for t in (types or "").split(",") if t.strip()]
    page = await read_feed(uow, principal.tenant_id, after, patterns, size)
    return {"data": page.events, "next_cursor": page.next_cursor, "has_more": page.has_more}
