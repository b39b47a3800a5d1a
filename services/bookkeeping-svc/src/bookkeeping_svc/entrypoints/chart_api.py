"""What the console's Twinfield settings form chooses from, read from Twinfield after Connect:
``GET /v1/twinfield/offices`` and ``GET /v1/twinfield/accounts?office=`` (scope ``operator``)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from bookkeeping_svc.service_layer import chart
from bookkeeping_svc.service_layer.gateway import gateway
from koppel_shared.deps import Operator, RuntimeDep, UowDep

router = APIRouter(prefix="/v1/twinfield", tags=["twinfield"])


class OfficeOut(BaseModel):
    code: str
    name: str


class OfficesOut(BaseModel):
    items: list[OfficeOut]

    model_config = {"json_schema_extra": {"examples": [{"items": [{"code": "NLA000001", "name": "Koppel Demo BV"}]}]}}


class AccountOut(BaseModel):
    code: str
    name: str
    kind: Literal["balance", "profit_and_loss"]


class AccountsOut(BaseModel):
    office: str
    items: list[AccountOut]

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "office": "NLA000001",
                    "items": [
                        {"code": "1105", "name": "Tussenrekening Twikey", "kind": "balance"},
                        {"code": "1300", "name": "Debiteuren", "kind": "balance"},
                        {"code": "8000", "name": "Omzet", "kind": "profit_and_loss"},
                    ],
                }
            ]
        }
    }


@router.get("/offices", response_model=OfficesOut, summary="The offices the Twinfield connection reaches")
async def list_offices(principal: Operator, runtime: RuntimeDep, uow: UowDep) -> dict[str, object]:
    """409 ``twinfield_not_connected`` / ``twinfield_consent_lost`` before Connect or after consent
    was withdrawn; 503 ``twinfield_unavailable`` when Twinfield cannot be asked."""
    items = await chart.offices(gateway(runtime), chart.chart_cache(runtime), uow, principal.tenant_id)
    return {"items": items}


@router.get("/accounts", response_model=AccountsOut, summary="An office's general ledger accounts")
async def list_accounts(
    principal: Operator,
    runtime: RuntimeDep,
    uow: UowDep,
    office: str = Query(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$"),
) -> dict[str, object]:
    """Balance sheet (``balance``) and profit and loss (``profit_and_loss``) accounts, by code;
    404 ``twinfield_office_not_found`` for an office the connection does not reach."""
    found = await chart.accounts(gateway(runtime), chart.chart_cache(runtime), uow, principal.tenant_id, office)
    return {"office": office, "items": [a.as_dict() for a in found]}
