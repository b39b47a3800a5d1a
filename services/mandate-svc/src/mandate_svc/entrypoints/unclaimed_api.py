"""The operator's list of unclaimed mandates (scope ``operator``): mandates Twikey's feed names
that Koppel did not create — signed in Twikey's dashboard, by another tool, or an invite made
twice before invites were single-flight. None is acted on until the operator adopts it (it
becomes a mandate and its events are published) or ignores it (nothing is published)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from koppel_shared.auth import TenantPrincipal
from koppel_shared.deps import UowDep
from koppel_shared.web.auth import require_scope
from koppel_shared.web.errors import Problem
from mandate_svc.adapters.unclaimed import Unclaimed
from mandate_svc.entrypoints.api import MandateOut, to_out
from mandate_svc.service_layer import mandates as uc

Operator = Annotated[TenantPrincipal, Depends(require_scope("operator"))]

# What Twikey said of the mandate: the latest non-empty value of each field over its messages.
_SHOWN = ("scheme", "state", "customer_number", "name", "company_name", "email", "iban", "bic", "signature_date")


class UnclaimedOut(BaseModel):
    mandate_number: str = Field(description="Twikey's mandate number (MndtId)")
    status: Literal["open", "adopted", "ignored"]
    change: str = Field(description="the latest feed message: signed | updated | cancelled")
    scheme: str | None
    state: str | None
    customer_number: str | None
    name: str | None
    company_name: str | None
    email: str | None
    iban: str | None
    bic: str | None
    signature_date: str | None
    messages: int = Field(description="feed messages received for it")
    mandate_id: str | None = Field(description="the mandate it became, once adopted")
    first_seen_at: datetime
    last_seen_at: datetime
    decided_at: datetime | None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "mandate_number": "SBX1M0000042",
                    "status": "open",
                    "change": "signed",
                    "scheme": "CORE",
                    "state": "SIGNED",
                    "customer_number": "C-1042",
                    "name": "An Peeters",
                    "company_name": None,
                    "email": "an.peeters@example.be",
                    "iban": "BE16645348971174",
                    "bic": "GKCCBEBB",
                    "signature_date": "2026-01-05",
                    "messages": 1,
                    "mandate_id": None,
                    "first_seen_at": "2026-01-05T10:00:00Z",
                    "last_seen_at": "2026-01-05T10:00:00Z",
                    "decided_at": None,
                }
            ]
        }
    }


class UnclaimedPage(BaseModel):
    items: list[UnclaimedOut]


def _out(entry: Unclaimed) -> UnclaimedOut:
    shown: dict[str, Any] = dict.fromkeys(_SHOWN)
    for message in entry.messages:
        for name in _SHOWN:
            value = getattr(message, name)
            if value not in (None, ""):
                shown[name] = str(value)
    return UnclaimedOut(
        mandate_number=entry.mandate_number,
        status=entry.status,
        change=entry.messages[-1].change,
        messages=len(entry.messages),
        mandate_id=entry.mandate_id,
        first_seen_at=entry.first_seen_at,
        last_seen_at=entry.last_seen_at,
        decided_at=entry.decided_at,
        **shown,
    )


_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or invalid tenant token", **_PROBLEM},
    403: {"description": "not an operator token", **_PROBLEM},
    404: {"description": "no unclaimed mandate with this number for this tenant", **_PROBLEM},
}

router = APIRouter(prefix="/v1/unclaimed-mandates", tags=["unclaimed mandates"])


def _not_found(number: str) -> Problem:
    return Problem(404, "unclaimed_mandate_not_found", f"no unclaimed mandate {number}")


@router.get(
    "", response_model=UnclaimedPage, summary="Mandates at Twikey that Koppel did not create", responses=_ERRORS
)
async def list_unclaimed(
    uow: UowDep,
    principal: Operator,
    status: Annotated[Literal["open", "adopted", "ignored"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> UnclaimedPage:
    entries = await uc.list_unclaimed(uow, str(principal.tenant_id), status, limit)
    return UnclaimedPage(items=[_out(e) for e in entries])


@router.post(
    "/{mandate_number}/adopt",
    response_model=MandateOut,
    summary="Make it a Koppel mandate (its events are published, mandate.signed first when signed)",
    responses=_ERRORS,
)
async def adopt(mandate_number: str, request: Request, uow: UowDep, principal: Operator) -> MandateOut:
    try:
        m = await uc.adopt_unclaimed(
            uow, str(principal.tenant_id), mandate_number, getattr(request.state, "correlation_id", None)
        )
    except uc.NotFound as exc:
        raise _not_found(mandate_number) from exc
    return to_out(m)


@router.post(
    "/{mandate_number}/ignore",
    response_model=UnclaimedOut,
    summary="Leave it alone: off the open list, nothing is published",
    responses={**_ERRORS, 409: {"description": "already adopted", **_PROBLEM}},
)
async def ignore(mandate_number: str, uow: UowDep, principal: Operator) -> UnclaimedOut:
    try:
        entry = await uc.ignore_unclaimed(uow, str(principal.tenant_id), mandate_number)
    except uc.NotFound as exc:
        raise _not_found(mandate_number) from exc
    except uc.AlreadyAdopted as exc:
        raise Problem(409, "unclaimed_mandate_adopted", f"{mandate_number} was adopted already") from exc
    return _out(entry)
