"""REST for reconciliation (operator scope, ``/v1/reconciliation``): start a run, follow its
progress, list the differences it found, apply a fix."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from bookkeeping_svc.dependencies import RuntimeDep
from bookkeeping_svc.domain.reconcile import unclaimed_mandate_path
from bookkeeping_svc.service_layer import reconcile, reconcile_fixes
from koppel_shared.deps import Operator, UowDep
from koppel_shared.web.errors import Problem

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"])
OLDEST_DAYS = 3 * 366  # Twinfield's browse advice: a few book years at most


class RunIn(BaseModel):
    since: date | None = Field(None, description="first day to reconcile (whole periods: from the first of its month)")

    model_config = {"extra": "forbid", "json_schema_extra": {"examples": [{"since": "2025-03-01"}]}}


class RunOut(BaseModel):
    id: uuid.UUID
    status: Literal["requested", "running", "done", "failed"]
    trigger: Literal["manual", "nightly"]
    since: date
    until: date
    progress: dict[str, Any] = Field(description="phase, items read per side, Twinfield credits used")
    differences: int
    open_differences: int
    error: str | None
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "0b7e0c52-7f7a-4d6f-a4c5-3b1e1b7e0c52",
                    "status": "running",
                    "trigger": "manual",
                    "since": "2025-03-01",
                    "until": "2025-04-02",
                    "progress": {"phase": "twinfield", "twikey_transactions": 1200, "twinfield_lines": 340},
                    "differences": 0,
                    "open_differences": 0,
                    "error": None,
                    "requested_at": "2025-04-02T09:00:00Z",
                    "started_at": "2025-04-02T09:00:01Z",
                    "finished_at": None,
                }
            ]
        }
    }


class DifferenceOut(BaseModel):
    id: uuid.UUID
    run_id: uuid.UUID
    kind: str = Field(description="paid_not_booked, booked_not_paid, booked_twice, amount_mismatch, …, mandate_unknown")
    key: str
    detail: str
    payment_kind: str | None
    twikey_id: str | None
    booking_id: uuid.UUID | None
    amount_cents: int | None
    twikey: dict[str, Any] | None = Field(description="Twikey's record (a paid item, or a mandate)")
    koppel: dict[str, Any] | None = Field(description="Koppel's booking")
    twinfield: list[dict[str, Any]] = Field(description="Twinfield's lines")
    fix: Literal["book", "error", "adopt"] = Field(
        description="the one-click fix that is safe here; adopt: in mandate-svc, at `fix_at`"
    )
    fix_at: str | None = Field(
        None, description="where a fix done outside reconciliation is made (POST `{fix_at}/adopt` or `/ignore`)"
    )
    status: Literal["open", "fixed", "ignored"]
    resolution: str | None
    note: str | None
    resolved_at: datetime | None


class DifferenceList(BaseModel):
    run: RunOut | None
    items: list[DifferenceOut]


class FixIn(BaseModel):
    action: Literal["book", "error", "ignore"]
    note: str | None = Field(None, max_length=2000, description="required to ignore")
    invoice_number: str | None = Field(
        None, min_length=1, max_length=200, description="to book a payment Koppel never heard of"
    )
    customer_number: str | None = Field(None, min_length=1, max_length=64)

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {"examples": [{"action": "ignore", "note": "refunded by hand"}]},
    }


def _run(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in RunOut.model_fields}


def _difference(row: Any) -> dict[str, Any]:
    out = {name: getattr(row, name) for name in DifferenceOut.model_fields if name != "fix_at"}
    out["fix_at"] = unclaimed_mandate_path(row.twikey_id) if row.fix == "adopt" and row.twikey_id else None
    return out


@router.post("/runs", status_code=202, response_model=RunOut, summary="Start a run (an active run is answered instead)")
async def start(principal: Operator, runtime: RuntimeDep, uow: UowDep, body: RunIn | None = None) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    since = body.since if body and body.since else today - timedelta(days=runtime.settings.reconcile_lookback_days)
    if since > today or since < today - timedelta(days=OLDEST_DAYS):
        raise Problem(422, "invalid_since", f"since must lie between {today - timedelta(days=OLDEST_DAYS)} and today")
    row = await reconcile.request_run(uow.session, principal.tenant_id, since, today)
    await uow.commit()
    return _run(row)


@router.get("/runs", response_model=list[RunOut], summary="Recent runs, newest first")
async def runs(principal: Operator, uow: UowDep, limit: int = Query(20, ge=1, le=200)) -> list[dict[str, Any]]:
    return [_run(r) for r in await reconcile_fixes.list_runs(uow, principal.tenant_id, limit)]


@router.get("/runs/{run_id}", response_model=RunOut, summary="One run and its progress")
async def run(run_id: uuid.UUID, principal: Operator, uow: UowDep) -> dict[str, Any]:
    return _run(await reconcile_fixes.get_run(uow, principal.tenant_id, run_id))


async def _list(
    uow: Any, tenant_id: uuid.UUID, row: Any, status: str | None, limit: int, offset: int
) -> dict[str, Any]:
    if row is None:
        return {"run": None, "items": []}
    items = await reconcile_fixes.list_differences(uow, tenant_id, row.id, status, limit, offset)
    return {"run": _run(row), "items": [_difference(d) for d in items]}


Status = Literal["open", "fixed", "ignored"]


@router.get("/runs/{run_id}/differences", response_model=DifferenceList, summary="The differences a run found")
async def run_differences(
    run_id: uuid.UUID,
    principal: Operator,
    uow: UowDep,
    status: Status | None = None,
    limit: int = Query(200, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    row = await reconcile_fixes.get_run(uow, principal.tenant_id, run_id)
    return await _list(uow, principal.tenant_id, row, status, limit, offset)


@router.get("/differences", response_model=DifferenceList, summary="The differences of the latest finished run")
async def differences(
    principal: Operator,
    uow: UowDep,
    status: Status | None = "open",
    limit: int = Query(200, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    row = await reconcile_fixes.latest_finished(uow, principal.tenant_id)
    return await _list(uow, principal.tenant_id, row, status, limit, offset)


@router.post(
    "/differences/{difference_id}/fix",
    response_model=DifferenceOut,
    summary="Book it, open an error, or ignore (a mandate is adopted in mandate-svc: 409 fix_in_unclaimed_mandates)",
)
async def fix(difference_id: uuid.UUID, body: FixIn, principal: Operator, uow: UowDep) -> dict[str, Any]:
    row = await reconcile_fixes.apply_fix(
        uow, principal.tenant_id, difference_id, body.action, body.note, body.invoice_number, body.customer_number
    )
    await uow.commit()
    return _difference(row)
