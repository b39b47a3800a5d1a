"""The control API under `/_sandbox`: what tests, benchmarks and the demo use to play the
debtor and the bank, manage creditors, seed data, inject faults, move the clock and read back
the sandbox's own records. JSON in, JSON out; never subject to faults; no authentication.
"""

from __future__ import annotations

from dataclasses import fields as dc_fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from . import mandates, paylinks, transactions
from .deps import faults_of, hooks_of, state_of
from .render import iso, mandate_json
from .seed import seed_mandates, seed_transactions
from .state import OPEN, PENDING_BANK, Creditor, Mandate, Paylink, SandboxState, Transaction

router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])

TIME_FIELDS = {"created_at", "sign_date", "date", "bkdate", "lastupdate", "expires_at"}


def public(obj: Mandate | Transaction | Paylink) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dc_fields(obj):
        value = getattr(obj, f.name)
        if f.name in TIME_FIELDS:
            value = iso(value)
        elif isinstance(value, Decimal):
            value = format(value, "f")
        elif isinstance(value, (list, dict)):
            value = type(value)(value)
        out[f.name] = value
    return out


def _creditor(state: SandboxState, api_key: str | None) -> Creditor:
    creditor = state.creditor(api_key)
    if creditor is None:
        raise HTTPException(404, f"no creditor with API key {api_key!r}")
    return creditor


def _mandate(state: SandboxState, mndt_id: str, api_key: str | None) -> tuple[Creditor, Mandate]:
    found = state.find_mandate(mndt_id, api_key)
    if not found:
        raise HTTPException(404, f"no mandate {mndt_id!r}")
    if len(found) > 1:
        raise HTTPException(409, f"mandate {mndt_id!r} exists for several creditors; pass ?api_key=")
    m = found[0]
    return state.creditors[m.api_key], m


def _transaction(state: SandboxState, tx_id: int) -> tuple[Creditor, Transaction]:
    t = state.find_transaction(tx_id)
    if t is None:
        raise HTTPException(404, f"no transaction {tx_id}")
    return state.creditors[t.api_key], t


def _paylink(state: SandboxState, link_id: int) -> tuple[Creditor, Paylink]:
    p = state.find_paylink(link_id)
    if p is None:
        raise HTTPException(404, f"no pay link {link_id}")
    return state.creditors[p.api_key], p


def _parse_time(raw: str) -> float:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(422, f"not an ISO date-time: {raw!r}") from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


# ---- sandbox-wide ------------------------------------------------------------------------------
@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    state = state_of(request)
    return {"ok": True, "default_api_key": state.default_api_key, "creditors": len(state.creditors)}


@router.post("/reset")
async def reset(request: Request) -> dict[str, Any]:
    """Forget everything (creditors, sessions, faults, webhook log); recreate the default creditor.
    Ids and sequence numbers carry on from where they were (never reused)."""
    old = state_of(request)
    default = old.creditors.get(old.default_api_key)
    new = old.successor()
    if default is not None:
        new.add_creditor(
            api_key=default.api_key,
            name=default.name,
            private_key=default.private_key,
            webhook_url=default.webhook_url,
            templates={s: ct for ct, s in default.templates.items()},
            merchant_id=default.merchant_id,
        )
    if default is not None:
        new.creditors[default.api_key].mandate_counter = default.mandate_counter
    request.app.state.sandbox = new
    hooks = hooks_of(request)
    hooks.state = new
    hooks.attempts.clear()
    faults_of(request).clear()
    return {"ok": True, "default": new.creditors[new.default_api_key].public() if default else None}


@router.post("/ids/align")
async def align_ids(request: Request) -> dict[str, Any]:
    """The next transaction and the next pay link will share this id."""
    return {"next_id": state_of(request).align_ids()}


class ClockAdvance(BaseModel):
    seconds: float = Field(ge=0)


@router.get("/clock")
async def clock(request: Request) -> dict[str, Any]:
    c = state_of(request).clock
    return {"now": iso(c.now()), "offset_seconds": c.offset}


@router.post("/clock/advance")
async def clock_advance(body: ClockAdvance, request: Request) -> dict[str, Any]:
    c = state_of(request).clock
    c.advance(body.seconds)
    return {"now": iso(c.now()), "offset_seconds": c.offset}


# ---- creditors -----------------------------------------------------------------------------------
class CreditorIn(BaseModel):
    api_key: str | None = None
    name: str | None = None
    private_key: str | None = Field(None, description="hex; enables the OTP check at login")
    webhook_url: str | None = None
    templates: dict[Literal["CORE", "B2B"], int] | None = None
    merchant_id: int | None = None


class CreditorPatch(BaseModel):
    name: str | None = None
    private_key: str | None = None
    webhook_url: str | None = None
    feed_page_size: int | None = Field(None, ge=1, le=100_000)
    rate_limit_per_minute: int | None = Field(None, ge=0)


@router.get("/creditors")
async def list_creditors(request: Request) -> list[dict[str, Any]]:
    return [c.public() for c in state_of(request).creditors.values()]


@router.post("/creditors", status_code=201)
async def create_creditor(body: CreditorIn, request: Request) -> dict[str, Any]:
    state = state_of(request)
    if body.api_key and body.api_key in state.creditors:
        raise HTTPException(409, "API key already exists")
    if body.templates is not None and set(body.templates) != {"CORE", "B2B"}:
        raise HTTPException(422, "templates needs both CORE and B2B ids")
    if body.private_key:
        try:
            bytes.fromhex(body.private_key)
        except ValueError:
            raise HTTPException(422, "private_key must be hex") from None
    c = state.add_creditor(
        api_key=body.api_key,
        name=body.name,
        private_key=body.private_key,
        webhook_url=body.webhook_url,
        templates={str(k): v for k, v in body.templates.items()} if body.templates else None,
        merchant_id=body.merchant_id,
    )
    return c.public()


@router.get("/creditors/{api_key}")
async def get_creditor(api_key: str, request: Request) -> dict[str, Any]:
    return _creditor(state_of(request), api_key).public()


@router.patch("/creditors/{api_key}")
async def patch_creditor(api_key: str, body: CreditorPatch, request: Request) -> dict[str, Any]:
    c = _creditor(state_of(request), api_key)
    for name, value in body.model_dump(exclude_unset=True).items():
        setattr(c, name, value)
    return c.public()


class FeedReset(BaseModel):
    feed: Literal["mandate", "transaction", "paylink", "all"] = "all"
    since: str | None = Field(None, description="ISO date-time (UTC); replay every event from then on")
    after_seq: int | None = Field(None, description="alternatively: replay every event after this sequence number")


@router.post("/creditors/{api_key}/feeds/reset")
async def reset_feed(api_key: str, body: FeedReset, request: Request) -> dict[str, Any]:
    """Twikey's dashboard "Reset feed": move the key's cursor back to a moment in time."""
    c = _creditor(state_of(request), api_key)
    names = ["mandate", "transaction", "paylink"] if body.feed == "all" else [body.feed]
    for name in names:
        feed = getattr(c, f"{name}_feed")
        if body.after_seq is not None:
            feed.resume_after(body.after_seq)
        else:
            feed.reset_to(_parse_time(body.since) if body.since else 0.0)
    return _feed_positions(c)


def _feed_positions(c: Creditor) -> dict[str, Any]:
    out = {}
    for name in ("mandate", "transaction", "paylink"):
        feed = getattr(c, f"{name}_feed")
        out[name] = {"events": len(feed.events), "cursor": feed.cursor, "pending": len(feed.events) - feed.cursor}
    return out


@router.get("/creditors/{api_key}/feeds")
async def feed_positions(api_key: str, request: Request) -> dict[str, Any]:
    return _feed_positions(_creditor(state_of(request), api_key))


@router.post("/creditors/{api_key}/sessions/expire")
async def expire_sessions(api_key: str, request: Request) -> dict[str, Any]:
    state = state_of(request)
    c = _creditor(state, api_key)
    tokens = [t for t, s in state.sessions.items() if s.api_key == c.api_key]
    for token in tokens:
        del state.sessions[token]
    return {"expired": len(tokens)}


# ---- the debtor ----------------------------------------------------------------------------------
class SignIn(BaseModel):
    iban: str | None = None
    bic: str | None = None
    method: str = "itsme"
    place: str = ""
    signer: str = ""
    sign_date: str | None = None
    bank_signature: bool | None = Field(None, description="B2B only: false skips the debtor bank")


class ReasonIn(BaseModel):
    reason: str | None = None


class MaxAmountIn(BaseModel):
    max_amount: Decimal = Field(ge=0, description="0 = no limit")


@router.get("/mandates")
async def list_mandates(
    request: Request,
    api_key: str | None = None,
    state: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    c = _creditor(state_of(request), api_key)
    items = [m for m in c.mandates.values() if not state or m.state == state.upper()]
    page = items[offset : offset + min(max(limit, 0), 10_000)]
    return {"total": len(items), "items": [public(m) for m in page]}


@router.get("/mandates/{mndt_id}")
async def get_mandate(mndt_id: str, request: Request, api_key: str | None = None) -> dict[str, Any]:
    c, m = _mandate(state_of(request), mndt_id, api_key)
    return {**public(m), "Mndt": mandate_json(m, c)}


@router.post("/mandates/{mndt_id}/sign")
async def debtor_sign(mndt_id: str, body: SignIn, request: Request, api_key: str | None = None) -> dict[str, Any]:
    state = state_of(request)
    c, m = _mandate(state, mndt_id, api_key)
    sign_date = _parse_time(body.sign_date) if body.sign_date else None
    mandates.sign(
        state, hooks_of(request), c, m, body.method, iban=body.iban or "", bic=body.bic or "",
        place=body.place, signer=body.signer, sign_date=sign_date, bank_signature=body.bank_signature,
    )  # fmt: skip
    return public(m)


@router.post("/mandates/{mndt_id}/refuse")
async def debtor_refuse(mndt_id: str, body: ReasonIn, request: Request, api_key: str | None = None) -> dict[str, Any]:
    c, m = _mandate(state_of(request), mndt_id, api_key)
    mandates.refuse(hooks_of(request), c, m, body.reason or "refused")
    return public(m)


@router.post("/mandates/{mndt_id}/cancel")
async def debtor_cancel(mndt_id: str, body: ReasonIn, request: Request, api_key: str | None = None) -> dict[str, Any]:
    """The debtor (or the debtor's bank) cancels a mandate."""
    state = state_of(request)
    c, m = _mandate(state, mndt_id, api_key)
    mandates.cancel(state, hooks_of(request), c, m, body.reason or "Cancelled by debtor", by_debtor=True)
    return public(m)


@router.post("/mandates/{mndt_id}/max-amount")
async def debtor_max_amount(
    mndt_id: str, body: MaxAmountIn, request: Request, api_key: str | None = None
) -> dict[str, Any]:
    state = state_of(request)
    c, m = _mandate(state, mndt_id, api_key)
    mandates.set_max_amount(state, hooks_of(request), c, m, body.max_amount)
    return public(m)


# ---- the bank ------------------------------------------------------------------------------------
@router.post("/mandates/{mndt_id}/bank/accept")
async def bank_accept(mndt_id: str, request: Request, api_key: str | None = None) -> dict[str, Any]:
    state = state_of(request)
    c, m = _mandate(state, mndt_id, api_key)
    mandates.bank_decision(state, hooks_of(request), c, m, accept=True)
    return public(m)


@router.post("/mandates/{mndt_id}/bank/reject")
async def bank_reject(mndt_id: str, body: ReasonIn, request: Request, api_key: str | None = None) -> dict[str, Any]:
    state = state_of(request)
    c, m = _mandate(state, mndt_id, api_key)
    mandates.bank_decision(state, hooks_of(request), c, m, accept=False, reason=body.reason or "")
    return public(m)


class FailIn(BaseModel):
    code: str = Field("MS02", description="SEPA R-code, e.g. MD01, AM04, MS02")
    message: str | None = None
    final: bool = True
    state: Literal["ERROR", "UNPAID"] = "ERROR"


class ReverseIn(BaseModel):
    code: str = "MD06"
    message: str | None = None


@router.get("/transactions")
async def list_transactions(
    request: Request,
    api_key: str | None = None,
    state: str | None = None,
    mndt_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    c = _creditor(state_of(request), api_key)
    items = [
        t
        for t in c.transactions.values()
        if (not state or t.state == state.upper()) and (not mndt_id or t.mndt_id == mndt_id)
    ]
    page = items[offset : offset + min(max(limit, 0), 10_000)]
    return {"total": len(items), "items": [public(t) for t in page]}


@router.get("/transactions/{tx_id}")
async def get_transaction(tx_id: int, request: Request) -> dict[str, Any]:
    return public(_transaction(state_of(request), tx_id)[1])


@router.post("/transactions/{tx_id}/paid")
async def bank_paid(tx_id: int, request: Request) -> dict[str, Any]:
    state = state_of(request)
    c, t = _transaction(state, tx_id)
    transactions.mark_paid(state, hooks_of(request), c, t)
    return public(t)


@router.post("/transactions/{tx_id}/fail")
async def bank_fail(tx_id: int, body: FailIn, request: Request) -> dict[str, Any]:
    state = state_of(request)
    c, t = _transaction(state, tx_id)
    transactions.mark_failed(state, hooks_of(request), c, t, body.code, body.message, body.final, body.state)
    return public(t)


@router.post("/transactions/{tx_id}/reverse")
async def bank_reverse(tx_id: int, body: ReverseIn, request: Request) -> dict[str, Any]:
    state = state_of(request)
    c, t = _transaction(state, tx_id)
    transactions.reverse(state, hooks_of(request), c, t, body.code, body.message)
    return public(t)


# Twikey's beta environment: bank feedback by amount (reference §5.2).
BETA_CODES = [(5, "MS03"), (10, "AM04"), (15, "MS02"), (20, "MD06")]
BETA_EXACT = {21: "AC01", 22: "AC04", 23: "AC06", 24: "AC13", 25: "AG01", 26: "FF01", 27: "MD01",
              28: "MD02", 29: "MD07", 30: "PY01", 31: "RC01", 32: "SL01"}  # fmt: skip


def beta_outcome(amount: Decimal) -> str | None:
    """The R-code Twikey's beta bank gives this amount, or None for PAID."""
    if amount >= 33:
        return None
    if amount in BETA_EXACT:
        return BETA_EXACT[int(amount)]
    for upper, code in BETA_CODES:
        if amount <= upper:
            return code
    return "MS03"


class BankRunIn(BaseModel):
    api_key: str | None = None


@router.post("/bank/run")
async def bank_run(body: BankRunIn, request: Request) -> dict[str, Any]:
    """One run of the beta bank: settle collected OPEN transactions by amount, decide pending B2B
    mandates by the last digit of the IBAN (even accepted, odd rejected)."""
    state, hooks = state_of(request), hooks_of(request)
    c = _creditor(state, body.api_key)
    paid = failed = accepted = rejected = 0
    for t in list(c.transactions.values()):
        if t.state != OPEN or t.collection is None:
            continue
        code = beta_outcome(t.amount)
        if code is None:
            transactions.mark_paid(state, hooks, c, t)
            paid += 1
        else:
            transactions.mark_failed(state, hooks, c, t, code)
            failed += 1
    for m in list(c.mandates.values()):
        if m.state != PENDING_BANK:
            continue
        even = m.iban[-1:].isdigit() and int(m.iban[-1]) % 2 == 0
        mandates.bank_decision(state, hooks, c, m, accept=even, reason="" if even else "Rejected by debtor bank")
        accepted, rejected = accepted + even, rejected + (not even)
    return {"paid": paid, "failed": failed, "accepted": accepted, "rejected": rejected}


# ---- pay links -----------------------------------------------------------------------------------
class PayIn(BaseModel):
    method: str = "bancontact"
    sign: bool = Field(False, description="also sign a mandate with the link's template (ct)")
    iban: str | None = None
    bic: str | None = None


class LinkStateIn(BaseModel):
    state: Literal["created", "started", "declined", "paid", "pending", "expired"]


@router.get("/paylinks")
async def list_paylinks(request: Request, api_key: str | None = None) -> dict[str, Any]:
    c = _creditor(state_of(request), api_key)
    return {"total": len(c.paylinks), "items": [public(p) for p in c.paylinks.values()]}


@router.get("/paylinks/{link_id}")
async def get_paylink(link_id: int, request: Request) -> dict[str, Any]:
    return public(_paylink(state_of(request), link_id)[1])


@router.post("/paylinks/{link_id}/pay")
async def pay_link(link_id: int, body: PayIn, request: Request) -> dict[str, Any]:
    state = state_of(request)
    c, p = _paylink(state, link_id)
    paylinks.pay(state, hooks_of(request), c, p, body.method, body.sign, body.iban or "", body.bic or "")
    return public(p)


@router.post("/paylinks/{link_id}/state")
async def set_link_state(link_id: int, body: LinkStateIn, request: Request) -> dict[str, Any]:
    state = state_of(request)
    c, p = _paylink(state, link_id)
    paylinks.set_state(state, hooks_of(request), c, p, body.state)
    return public(p)


# ---- seeding -------------------------------------------------------------------------------------
class SeedIn(BaseModel):
    api_key: str | None = None
    mandates: int = Field(0, ge=0, le=2_000_000)
    scheme: Literal["CORE", "B2B"] = "CORE"
    transactions: int = Field(0, ge=0, le=2_000_000)
    amount: Decimal = Field(Decimal("25.00"), gt=0)
    paid: bool = Field(False, description="the bank paid every seeded transaction (no webhooks)")


@router.post("/seed")
async def seed(body: SeedIn, request: Request) -> dict[str, Any]:
    """Signed mandates and/or OPEN transactions (spread over the seeded - else all signed - mandates)."""
    state = state_of(request)
    c = _creditor(state, body.api_key)
    ids = seed_mandates(state, c, body.mandates, body.scheme)
    tx_ids: list[int] = []
    if body.transactions:
        try:
            tx_ids = seed_transactions(state, c, body.transactions, body.amount, ids or None, body.paid)
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
    return {
        "mandates": len(ids),
        "first_mandate": ids[0] if ids else None,
        "last_mandate": ids[-1] if ids else None,
        "transactions": len(tx_ids),
        "first_transaction": tx_ids[0] if tx_ids else None,
        "last_transaction": tx_ids[-1] if tx_ids else None,
    }


# ---- faults --------------------------------------------------------------------------------------
class FaultIn(BaseModel):
    kind: Literal["error", "latency", "timeout", "rate_limit", "expired_token", "drop_webhook"]
    path: str = Field("*", description='glob over the path; "transaction" = "/creditor/transaction"')
    method: str = "*"
    rate: float = Field(1.0, ge=0, le=1)
    count: int | None = Field(None, ge=0)
    status: int = Field(500, ge=400, le=599)
    delay_seconds: float = Field(20.0, ge=0)
    after_write: bool = False
    retry_after: int = Field(30, ge=0)
    seed: int | None = Field(None, description="reseed the fault RNG for reproducible runs")


@router.get("/faults")
async def list_faults(request: Request) -> list[dict[str, Any]]:
    return [r.public() for r in faults_of(request).rules]


@router.post("/faults", status_code=201)
async def add_fault(body: FaultIn, request: Request) -> dict[str, Any]:
    options = body.model_dump(exclude={"kind", "seed"})
    return faults_of(request).add(body.kind, seed=body.seed, **options).public()


@router.delete("/faults")
async def clear_faults(request: Request) -> dict[str, Any]:
    faults_of(request).clear()
    return {"ok": True}


@router.delete("/faults/{rule_id}")
async def delete_fault(rule_id: int, request: Request) -> dict[str, Any]:
    if not faults_of(request).remove(rule_id):
        raise HTTPException(404, f"no fault {rule_id}")
    return {"ok": True}


# ---- webhooks ------------------------------------------------------------------------------------
@router.get("/webhooks")
async def list_webhooks(
    request: Request, api_key: str | None = None, status: str | None = None, wait: bool = False
) -> list[dict[str, Any]]:
    """Recorded webhook attempts, oldest first; `wait=true` first waits for those in flight."""
    hooks = hooks_of(request)
    if wait:
        await hooks.drain()
    key = _creditor(state_of(request), api_key).api_key if api_key else None
    return [
        dict(a)
        for a in hooks.attempts
        if (key is None or a["api_key"] == key) and (not status or a["status"] == status)
    ]


@router.delete("/webhooks")
async def clear_webhooks(request: Request) -> dict[str, Any]:
    hooks_of(request).attempts.clear()
    return {"ok": True}


class TestWebhookIn(BaseModel):
    api_key: str | None = None


@router.post("/webhooks/test")
async def test_webhook(body: TestWebhookIn, request: Request) -> dict[str, Any]:
    """Twikey's "test webhook" button: `msg=dummytest&type=event` (the order the .NET SDK shows)."""
    c = _creditor(state_of(request), body.api_key)
    attempt = hooks_of(request).emit(c, {"msg": "dummytest", "type": "event"})
    return dict(attempt or {})
