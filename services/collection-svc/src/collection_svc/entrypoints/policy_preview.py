"""``POST /v1/collection-policy/preview``: the body of ``PUT /v1/collection-policy``, answered with
what that policy would do to the tenant's open invoices; nothing is stored."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from collection_svc.domain.policy import CollectionPolicy
from collection_svc.entrypoints.api import PolicyIn
from collection_svc.service_layer import preview as preview_cases
from collection_svc.service_layer.records import Clock, utc_now
from koppel_shared.deps import Principal, RuntimeDep, UowDep

router = APIRouter(prefix="/v1/collection-policy", tags=["collection policy"])

Status = Literal["scheduled", "skipped", "paylink"]


class PreviewSummary(BaseModel):
    open_invoices: int
    would_collect: int
    would_hold: int
    pay_links: int
    changed: int
    listed: int


class PreviewInvoice(BaseModel):
    invoice_id: str
    invoice_number: str
    customer_number: str
    amount: str
    amount_cents: int
    due_date: date
    now: str
    now_status: Status
    now_reason_code: str
    then: str
    then_status: Status
    then_reason_code: str
    collect_on: date | None
    changed: bool


class PreviewOut(BaseModel):
    summary: PreviewSummary
    note: str
    invoices: list[PreviewInvoice]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "summary": {
                        "open_invoices": 2,
                        "would_collect": 1,
                        "would_hold": 1,
                        "pay_links": 0,
                        "changed": 2,
                        "listed": 2,
                    },
                    "note": preview_cases.NOTE,
                    "invoices": [
                        {
                            "invoice_id": "5b0e8c9e-3f1a-4c52-9d0e-2f6a1b7c8d90",
                            "invoice_number": "INV-2026-0042",
                            "customer_number": "C-1",
                            "amount": "49.99",
                            "amount_cents": 4999,
                            "due_date": "2026-02-15",
                            "now": "scheduled for 2026-02-12 (3 days before the due date)",
                            "now_status": "scheduled",
                            "now_reason_code": "due",
                            "then": "scheduled for 2026-02-05 (10 days before the due date)",
                            "then_status": "scheduled",
                            "then_reason_code": "due",
                            "collect_on": "2026-02-05",
                            "changed": True,
                        }
                    ],
                }
            ]
        }
    }


@router.post("/preview", response_model=PreviewOut, summary="What a proposed policy would do to the open invoices")
async def preview_policy(
    body: PolicyIn,
    principal: Principal,
    uow: UowDep,
    runtime: RuntimeDep,
    limit: int = Query(200, ge=1, le=1000, description="invoices listed at most; the summary counts all"),
) -> dict[str, Any]:
    """Same body and the same 422 as ``PUT /v1/collection-policy``. ``now`` is what the invoice's
    collection is set to; ``then`` what deciding it again under the proposed policy gives, by the
    rules the engine applies (``collection_svc/domain/preview.py``). Nothing is stored."""
    values = body.model_dump()
    values["retry_r_codes"] = tuple(values["retry_r_codes"])
    clock: Clock = runtime.extras.get("clock", utc_now)
    return await preview_cases.preview(
        uow.session, principal.tenant_id, CollectionPolicy(**values), clock().date(), limit
    )
