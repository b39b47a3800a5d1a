"""``POST /v1/webhook-endpoints/{id}/test``: send the endpoint a signed ``koppel.test`` event."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from koppel_shared.deps import Principal, UowDep
from notify_svc.service_layer.sample import send_sample

router = APIRouter(tags=["webhooks"])


class SampleOut(BaseModel):
    delivery_id: str
    event_id: str

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "delivery_id": "0c7d5a7e-1f2b-4c3d-8e9f-0a1b2c3d4e5f",
                    "event_id": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
                }
            ]
        }
    }


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/test",
    status_code=202,
    response_model=SampleOut,
    summary="Send the endpoint a signed test event (type koppel.test)",
)
async def send_test_event(endpoint_id: uuid.UUID, request: Request, principal: Principal, uow: UowDep) -> Any:
    """Delivered and signed like every webhook, and listed in ``GET /v1/deliveries``; the event
    feed does not list it. 404 ``endpoint_not_found`` for an endpoint of another tenant, 409
    ``endpoint_disabled`` while the endpoint is disabled."""
    correlation_id = getattr(request.state, "correlation_id", None)
    return await send_sample(uow, principal.tenant_id, endpoint_id, correlation_id)
