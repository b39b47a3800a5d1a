"""Service-to-service HTTP under ``/internal`` (scope ``internal``, not exposed by the gateway).

``POST /internal/v1/mandates/invite``: mandate-svc invites a debtor at Twikey and needs the sign
URL at once, for the ERP's response.

``GET /internal/v1/twikey/paid-items``: bookkeeping-svc reads Twikey's own record of paid
transactions and pay links, page by page, to reconcile against.

``GET /internal/v1/twikey/mandates``: likewise Twikey's own record of its mandates (the mandate
feed's messages), so reconciliation finds mandates at Twikey that Koppel never created."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, model_validator

from koppel_shared.debtor import INVITE_DEBTOR_FIELDS, InviteDebtor
from koppel_shared.deps import Internal
from sync_svc.dependencies import Deps, RuntimeDep
from sync_svc.domain.invite import InviteRequest
from sync_svc.service_layer import commands, paid_items

router = APIRouter(prefix="/internal/v1", tags=["internal"])

# What a nested "customer" may hold: the invite's debtor, and the name parts and VAT number an ERP
# may give instead of or beside them.
CUSTOMER_FIELDS = frozenset({*INVITE_DEBTOR_FIELDS, "first_name", "last_name", "vat_number"})


class InviteIn(BaseModel):
    reference: str = Field(..., min_length=1, max_length=100, description="Our mandate id")
    mandate_number: str | None = Field(
        None,
        min_length=1,
        max_length=35,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9/?:().,'+ -]*[A-Za-z0-9])?$",
        description="The mandate number Twikey is to give the mandate (SEPA mandate reference: at most 35 "
        "characters, letters, digits and / - ? : ( ) . , ' + space, not first or last). Makes the invite "
        "single-flight: an attempt after one whose outcome is unknown looks the mandate up instead of inviting again",
    )
    scheme: Literal["CORE", "B2B"]
    delivery: Literal["email", "sms", "link"]
    name: str | None = Field(None, max_length=140)
    first_name: str | None = Field(None, max_length=70)
    last_name: str | None = Field(None, max_length=70)
    company_name: str | None = Field(None, max_length=140)
    email: str | None = Field(None, max_length=254)
    mobile: str | None = Field(None, max_length=30)
    iban: str | None = Field(None, max_length=34)
    bic: str | None = Field(None, max_length=11)
    language: str | None = Field(None, max_length=5)
    address: str | None = Field(None, max_length=140)
    zip: str | None = Field(None, max_length=16)
    city: str | None = Field(None, max_length=70)
    country: str | None = Field(None, max_length=2)
    customer_number: str | None = Field(None, max_length=50)
    vat_number: str | None = Field(None, max_length=30)

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "reference": "0f5b8f3e-2a47-4c1e-9a55-0c3f1d0b7e21",
                    "mandate_number": "KOP0F5B8F3E2A474C1E9A550C3F1D0B7E21",
                    "scheme": "CORE",
                    "delivery": "email",
                    "name": "An Peeters",
                    "email": "an@example.be",
                    "language": "nl",
                    "customer_number": "C-1001",
                }
            ]
        }
    }

    @model_validator(mode="before")
    @classmethod
    def _flatten_customer(cls, data: Any) -> Any:
        # Also accept the customer fields nested under "customer": mandate-svc sends them so, as
        # ``koppel_shared.debtor.InviteDebtor``.
        if isinstance(data, dict) and isinstance(data.get("customer"), dict):
            nested = {k: v for k, v in data["customer"].items() if k in CUSTOMER_FIELDS}
            data = {**nested, **{k: v for k, v in data.items() if k != "customer"}}
        return data


class InviteOut(BaseModel):
    mandate_number: str
    sign_url: str | None = Field(
        description="null when the invite's answer was lost and the mandate was found by a look-up "
        "(Twikey's detail call does not give the sign URL)"
    )
    key: str | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [{"mandate_number": "KOP0001", "sign_url": "https://twikey.to/kop/Ab3x", "key": "Ab3x"}]
        }
    }


@router.post("/mandates/invite", response_model=InviteOut)
async def invite(body: InviteIn, principal: Internal, runtime: RuntimeDep, deps: Deps) -> dict[str, Any]:
    """Prepare a mandate at Twikey with the tenant's template for the scheme. Twikey's refusal →
    422 ``twikey_<ApiErrorCode>``; Twikey unreachable, or the outcome of an earlier attempt not
    known yet → 503 ``twikey_unavailable``. With ``mandate_number`` the call is idempotent: asking
    again never invites twice (the mandate is looked up first)."""
    return await commands.invite(runtime, deps, principal.tenant_id, invite_request(body))


def invite_request(body: InviteIn) -> InviteRequest:
    """The use case's request: the debtor's fields as the shared debtor model, the rest beside it."""
    fields = body.model_dump()
    debtor = InviteDebtor(**{name: fields.pop(name) for name in INVITE_DEBTOR_FIELDS})
    return InviteRequest(**fields, debtor=debtor)


class PaidItem(BaseModel):
    kind: Literal["transaction", "paylink"]
    twikey_id: str
    state: Literal["paid", "failed"] = Field(description="failed after paid = reversed")
    amount_cents: int
    reference: str | None = Field(None, description="our reference at Twikey (collection id, pay link id)")
    mandate_number: str | None = None
    at: str | None = Field(None, description="when Twikey says it was paid (bank date, link update)")
    seq: int = Field(description="Twikey's feed sequence number: a later entry of the same item wins")


class PaidItemsOut(BaseModel):
    kind: Literal["transaction", "paylink"]
    items: list[PaidItem]
    next_after: int = Field(description="pass as `after` for the next page")
    done: bool = Field(description="the end of Twikey's feed was reached")
    unreadable: int = Field(0, description="entries that could not be read (on the feed's bad-messages list)")


@router.get("/twikey/paid-items", response_model=PaidItemsOut)
async def paid(
    principal: Internal,
    runtime: RuntimeDep,
    deps: Deps,
    kind: Literal["transaction", "paylink"] = Query(..., description="Twikey numbers the two kinds separately"),
    after: int = Query(0, ge=0, le=2**62, description="Twikey feed position to replay after (0 = the start)"),
) -> dict[str, Any]:
    """Twikey's own record of what was paid, replayed from its feed (``X-RESUME-AFTER``), for
    reconciliation. 409 ``feed_not_drained`` until sync-svc has read the feed once."""
    return await paid_items.read(runtime, deps, principal.tenant_id, kind, after)


class MandateMessage(BaseModel):
    mandate_number: str = Field(description="Twikey's mandate number (MndtId)")
    change: Literal["signed", "updated", "cancelled"] = Field(description="the kind of feed message")
    state: str | None = Field(None, description="SIGNED, SUSPENDED, CANCELLED where the message says")
    customer_number: str | None = None
    name: str | None = Field(None, description="the debtor (company name, else the person)")
    signature_date: str | None = None
    at: str = Field(description="when Twikey says the message happened")
    seq: int = Field(description="Twikey's feed sequence number (EvtId): a later message of the same mandate wins")


class MandatesOut(BaseModel):
    items: list[MandateMessage]
    next_after: int = Field(description="pass as `after` for the next page")
    done: bool = Field(description="the end of Twikey's feed was reached")
    unreadable: int = Field(0, description="messages that could not be read (on the feed's bad-messages list)")


@router.get("/twikey/mandates", response_model=MandatesOut)
async def mandates(
    principal: Internal,
    runtime: RuntimeDep,
    deps: Deps,
    after: int = Query(0, ge=0, le=2**62, description="Twikey feed position to replay after (0 = the start)"),
) -> dict[str, Any]:
    """Twikey's own record of its mandates, replayed from the mandate feed (``X-RESUME-AFTER``),
    for reconciliation. 409 ``feed_not_drained`` until sync-svc has read the feed once."""
    return await paid_items.read_mandates(runtime, deps, principal.tenant_id, after)
