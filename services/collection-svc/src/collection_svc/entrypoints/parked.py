"""The operators' API for parked Twikey updates: the messages the applier could not apply on their
own (each with its error), and putting them back in line once the cause is fixed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from collection_svc.service_layer import parked as parked_cases
from koppel_shared.deps import Operator, UowDep
from koppel_shared.web.errors import Problem


class ParkedUpdate(BaseModel):
    seq: int = Field(description="its place in arrival order; what a retry names")
    event_id: uuid.UUID
    event_type: str
    correlation_id: str | None
    received_at: datetime
    failed_at: datetime
    error: str | None = Field(description="why applying it failed")
    data: dict[str, Any]


class ParkedPage(BaseModel):
    items: list[ParkedUpdate]


class RetryIn(BaseModel):
    seqs: list[int] | None = Field(None, min_length=1, max_length=1000, description="the updates to retry")
    all_: bool = Field(False, alias="all", description="retry every parked update of the tenant")

    model_config = ConfigDict(strict=True, populate_by_name=False, extra="forbid")


class RetryOut(BaseModel):
    retried: list[int] = Field(description="the seqs put back in line, applied on the applier's next pass")


router = APIRouter(prefix="/v1/parked-updates", tags=["parked updates"])


@router.get("", response_model=ParkedPage, summary="Twikey updates parked because applying them failed")
async def list_parked(
    principal: Operator, uow: UowDep, limit: Annotated[int, Query(ge=1, le=500)] = 200
) -> dict[str, Any]:
    return {"items": await parked_cases.list_parked(uow.session, principal.tenant_id, limit)}


@router.post(
    "/retry",
    response_model=RetryOut,
    summary="Put parked updates back in line",
    description="Either `seqs` or `all: true` (422 `seqs_or_all`). A seq that is not one of the tenant's "
    "parked updates: 404 `not_parked`, and none is retried.",
)
async def retry_parked(body: RetryIn, principal: Operator, uow: UowDep) -> dict[str, Any]:
    if (body.seqs is None) == (not body.all_):
        raise Problem(422, "seqs_or_all", "give either seqs or all: true")
    retried = await parked_cases.retry_parked(uow.session, principal.tenant_id, body.seqs)
    missing = sorted(set(body.seqs or ()) - set(retried))
    if missing:  # the unit of work rolls back: nothing is retried
        raise Problem(404, "not_parked", f"not a parked update of this tenant: {missing}", seqs=missing)
    await uow.commit()
    return {"retried": retried}
