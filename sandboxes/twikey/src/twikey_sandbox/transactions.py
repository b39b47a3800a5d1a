"""Transactions (SDD collections): create (single, bulk, with Idempotency-Key), update, remove,
detail, actions, `/collect`, and the bank's outcomes (paid, failed with an R-code, reversed).

Every state change - including creation as OPEN - appends a snapshot to the creditor's
transaction feed; bank outcomes also send a `type=payment` webhook.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from datetime import date as date_cls
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from . import mandates
from .amounts import parse_amount
from .auth import authenticate, check_rate_limit
from .deps import hooks_of, state_of
from .errors import ApiError, check_lengths, read_params, truthy
from .render import day, iso, transaction_created_json, transaction_json
from .state import (
    ERROR,
    IDEMPOTENCY_WINDOW_SECONDS,
    OPEN,
    PAID,
    SIGNED,
    SUSPENDED,
    UNPAID,
    BulkBatch,
    Creditor,
    FeedEvent,
    SandboxState,
    Transaction,
    snapshot_transaction,
)
from .webhooks import WebhookDispatcher

router = APIRouter(prefix="/creditor")

R_CODES = {
    "AC01": "Incorrect account number",
    "AC04": "Closed account number",
    "AC06": "Blocked account",
    "AC13": "Invalid debtor account type",
    "AG01": "Transaction forbidden on this account",
    "AG02": "Invalid bank operation code",
    "AM04": "Insufficient funds",
    "AM05": "Duplicate collection",
    "BE05": "Unknown creditor identifier",
    "FF01": "Invalid file format",
    "MD01": "No valid mandate",
    "MD02": "Missing mandatory mandate information",
    "MD06": "Refund request by end customer",
    "MD07": "End customer deceased",
    "MS02": "Refusal by the debtor",
    "MS03": "Reason not specified",
    "RC01": "Bank identifier incorrect",
    "RR01": "Missing debtor account or identification",
    "SL01": "Specific service offered by debtor agent",
}

# The EPC's basic Latin set (EPC217-08), the one every SEPA bank takes; Twikey answers
# err_invalid_sepachars for anything else. Whether it would transliterate accented letters is not
# documented, so the sandbox does not (never more lenient than the real API).
SEPA_TEXT = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]*")
MAX_BULK = 5000
STATES = ("OPEN", "PAID", "ERROR", "UNPAID")
# Max35Text: an end-to-end id (``ref`` with ``refase2e``) and a mandate reference.
MAX_E2E = 35
# Transactions per /transaction/query answer (Twikey's page size is not published).
QUERY_PAGE = 500
# A bulk batch is "processing" (409) for this long plus a millisecond per item, in sandbox time.
BULK_PROCESSING_SECONDS = 1.0


# ---- helpers -------------------------------------------------------------------------------------
def _feed(state: SandboxState, creditor: Creditor, t: Transaction) -> None:
    t.lastupdate = state.clock.now()
    creditor.transaction_feed.append(
        FeedEvent(seq=state.next_seq(), at=t.lastupdate, kind="state", obj=snapshot_transaction(t))
    )


def _parse_day(raw: str, name: str) -> str:
    try:
        return date_cls.fromisoformat(raw.strip()).isoformat()
    except ValueError:
        raise ApiError("err_invalid_date", extra=name) from None


def _check_message(message: str) -> str:
    message = message.strip()
    if not message:
        raise ApiError("err_msg_missing", extra="message")
    if len(message) > 140:
        raise ApiError("err_invalid_params", message="Message longer than 140", extra="message")
    if not SEPA_TEXT.fullmatch(message):
        raise ApiError("err_invalid_sepachars", extra="message")
    return message


def _check_end_to_end_id(ref: str | None) -> None:
    """``refase2e``: the ref becomes the SEPA end-to-end id — Max35Text of SEPA characters."""
    if not ref:
        raise ApiError("err_missing_params", message="refase2e needs a ref", extra="ref")
    if len(ref) > MAX_E2E:
        raise ApiError("err_invalid_params", message=f"End-to-end id longer than {MAX_E2E}", extra="ref")
    if not SEPA_TEXT.fullmatch(ref):
        raise ApiError("err_invalid_sepachars", extra="ref")


def check_idempotency(state: SandboxState, creditor: Creditor, key: str | None) -> None:
    if not key:
        return
    if len(key) > 64:
        raise ApiError("err_invalid_params", message="Idempotency-Key longer than 64", extra="Idempotency-Key")
    used = creditor.idempotency.get(key)
    if used is not None and state.clock.now() - used < IDEMPOTENCY_WINDOW_SECONDS:
        raise ApiError("err_duplicate_ref", status=409)


def remember_idempotency(state: SandboxState, creditor: Creditor, key: str | None) -> None:
    if key:
        creditor.idempotency[key] = state.clock.now()


def create(state: SandboxState, creditor: Creditor, params: dict[str, Any]) -> Transaction:
    """Validate and create one OPEN transaction (shared by the single and bulk endpoints)."""
    check_lengths("POST", "/transaction", params)  # a bulk item is held to the single call's limits
    mndt_id = str(params.get("mndtId") or "").strip()
    if not mndt_id:
        raise ApiError("err_missing_params", extra="mndtId")
    m = creditor.mandates.get(mndt_id)
    if m is None:
        raise ApiError("err_no_contract")
    force = truthy(str(params.get("force", "")))
    if m.state != SIGNED and not (force and m.state == SUSPENDED):
        raise ApiError("err_invalid_state", message=f"Mandate is {m.state}")
    message = _check_message(str(params.get("message") or ""))
    if params.get("amount") in (None, ""):
        raise ApiError("err_invalid_amount", extra="amount")
    amount = parse_amount(params["amount"])
    if m.max_amount > 0 and amount > m.max_amount:
        raise ApiError("err_billing_overdrawn")
    now = state.clock.now()
    reqcolldt = None
    if params.get("reqcolldt"):
        reqcolldt = _parse_day(str(params["reqcolldt"]), "reqcolldt")
        if reqcolldt < day(now):
            raise ApiError("err_invalid_date", message="Collection date in the past", extra="reqcolldt")
    event_date = now
    if params.get("date"):
        billed = _parse_day(str(params["date"]), "date")
        event_date = datetime.fromisoformat(billed).replace(tzinfo=UTC).timestamp()
    ref = str(params["ref"]).strip() if params.get("ref") else None
    if truthy(str(params.get("refase2e", ""))):
        _check_end_to_end_id(ref)
    t = Transaction(
        id=state.next_tx_id(),
        api_key=creditor.api_key,
        contract_id=m.contract_id,
        mndt_id=m.mndt_id,
        contract=m.contract_number,
        amount=amount,
        msg=message,
        place=str(params["place"]) if params.get("place") else None,
        ref=ref,
        date=event_date,
        reqcolldt=reqcolldt,
    )
    creditor.transactions[t.id] = t
    _feed(state, creditor, t)
    return t


def _ensure_collected(state: SandboxState, t: Transaction) -> None:
    if t.collection is None:
        state.collect_counter += 1
        t.collection = str(state.collect_counter)


def mark_paid(
    state: SandboxState, hooks: WebhookDispatcher, creditor: Creditor, t: Transaction, manual: bool = False
) -> None:
    if t.state not in (OPEN, UNPAID) and not (t.state == ERROR and not t.final):
        raise ApiError("err_transaction_invalid_action", message=f"Transaction is {t.state}")
    if not manual:
        _ensure_collected(state, t)
    t.state, t.final = PAID, True
    t.bkdate, t.bkamount, t.bkerror, t.bkmsg = state.clock.now(), t.amount, None, None
    t.actions.append({"type": "paid", "reason": "manual" if manual else "bank", "action": "PAID", "at": iso(t.bkdate)})
    _feed(state, creditor, t)
    hooks.payment(creditor)


def mark_failed(
    state: SandboxState,
    hooks: WebhookDispatcher,
    creditor: Creditor,
    t: Transaction,
    code: str,
    message: str | None = None,
    final: bool = True,
    new_state: str = ERROR,
) -> None:
    if t.state not in (OPEN, UNPAID) and not (t.state == ERROR and not t.final):
        raise ApiError("err_transaction_invalid_action", message=f"Transaction is {t.state}")
    if new_state not in (ERROR, UNPAID):
        raise ApiError("err_invalid_params", message="state must be ERROR or UNPAID", extra="state")
    _ensure_collected(state, t)
    t.state, t.final = new_state, final
    t.bkdate, t.bkamount = state.clock.now(), t.amount
    t.bkerror, t.bkmsg = code.upper(), message or R_CODES.get(code.upper(), f"Rejected by bank ({code})")
    t.actions.append({"type": "bank", "reason": t.bkerror, "action": new_state, "at": iso(t.bkdate)})
    _feed(state, creditor, t)
    hooks.payment(creditor)


def reverse(
    state: SandboxState,
    hooks: WebhookDispatcher,
    creditor: Creditor,
    t: Transaction,
    code: str = "MD06",
    message: str | None = None,
) -> None:
    """A SEPA R-transaction after PAID: a new feed entry for the same id, ERROR with bkerror."""
    if t.state != PAID:
        raise ApiError("err_transaction_invalid_action", message=f"Transaction is {t.state}, not PAID")
    t.state, t.final = ERROR, True
    t.bkdate, t.bkamount = state.clock.now(), t.amount
    t.bkerror, t.bkmsg = code.upper(), message or R_CODES.get(code.upper(), f"Reversal ({code})")
    t.actions.append({"type": "reversal", "reason": t.bkerror, "action": ERROR, "at": iso(t.bkdate)})
    _feed(state, creditor, t)
    hooks.payment(creditor)


def _find(creditor: Creditor, params: dict[str, str], missing: str = "err_no_transaction") -> Transaction:
    """The transaction named by ``id`` or ``ref``; ``missing`` is the code the endpoint documents
    for an unknown one ([OAS]: ``err_no_transaction`` for detail/update/action, ``err_not_found``
    for remove)."""
    if params.get("id"):
        try:
            t = creditor.transactions.get(int(params["id"]))
        except ValueError:
            raise ApiError("err_invalid_params", extra="id") from None
        if t is None:
            raise ApiError(missing)
        return t
    if params.get("ref"):
        found = [t for t in creditor.transactions.values() if t.ref == params["ref"]]
        if not found:
            raise ApiError(missing)
        if len(found) > 1:
            raise ApiError("err_duplicate_tx")
        return found[0]
    raise ApiError("err_missing_params", extra="id")


# ---- routes --------------------------------------------------------------------------------------
@router.post("/transaction")
async def create_route(request: Request) -> JSONResponse:
    creditor = authenticate(request)
    state = state_of(request)
    key = request.headers.get("idempotency-key")
    params = await read_params(request)
    # No await from the check to the remember: a retry that arrives while the first request is
    # still being handled gets its 409 too.
    check_idempotency(state, creditor, key)
    t = create(state, creditor, params)
    remember_idempotency(state, creditor, key)
    return JSONResponse({"Entries": [transaction_created_json(t)]})


@router.put("/transaction")
async def update_route(request: Request) -> Response:
    creditor = authenticate(request)
    state = state_of(request)
    params = await read_params(request)
    t = _find(creditor, params)
    if t.collection is not None or t.state != OPEN:
        raise ApiError("err_not_authorised")
    if "message" in params:
        t.msg = _check_message(params["message"])
    if "amount" in params:
        amount = parse_amount(params["amount"])
        m = creditor.mandates.get(t.mndt_id)
        if m is not None and m.max_amount > 0 and amount > m.max_amount:
            raise ApiError("err_billing_overdrawn")
        t.amount = amount
    if "reqcolldt" in params:
        t.reqcolldt = _parse_day(params["reqcolldt"], "reqcolldt")
    if "ref" in params:
        t.ref = params["ref"] or None
    if "place" in params:
        t.place = params["place"] or None
    _feed(state, creditor, t)
    return Response(status_code=204)


@router.delete("/transaction")
async def remove_route(request: Request) -> Response:
    creditor = authenticate(request)
    params = await read_params(request)
    t = _find(creditor, params, missing="err_not_found")
    if t.collection is not None or t.state != OPEN:
        raise ApiError("err_not_authorised")
    del creditor.transactions[t.id]
    return Response(status_code=204)


@router.get("/transaction/detail")
async def detail_route(request: Request) -> JSONResponse:
    creditor = authenticate(request)
    headers = check_rate_limit(request, creditor)
    q = request.query_params
    includes = set(q.getlist("include"))
    if (q.get("state") or "").upper() not in ("", *STATES):  # [OAS] enum OPEN/PAID/ERROR/UNPAID
        raise ApiError("err_invalid_params", extra="state")
    if q.get("id") or q.get("ref"):
        entries = [_find(creditor, dict(q))]
        wanted_state = (q.get("state") or "").upper()
        entries = [t for t in entries if not wanted_state or t.state == wanted_state]
    else:
        wanted_state = (q.get("state") or OPEN).upper()
        mndt = q.get("mndtId")
        entries = [
            t for t in creditor.transactions.values() if t.state == wanted_state and (not mndt or t.mndt_id == mndt)
        ]
    return JSONResponse({"Entries": [transaction_json(t, includes) for t in entries]}, headers=headers)


@router.get("/transaction/query")
async def query_route(request: Request) -> JSONResponse:
    """Transactions from an id on ([OAS] ``getTransactionQuery``: ``fromId`` required, ``mndtId``
    optional, rate-limited; no body documented — entries as in the feed, per [JAVA])."""
    creditor = authenticate(request)
    headers = check_rate_limit(request, creditor)
    q = request.query_params
    if not q.get("fromId"):
        raise ApiError("err_missing_params", extra="fromId")
    try:
        from_id = int(q["fromId"])
    except ValueError:
        raise ApiError("err_invalid_params", extra="fromId") from None
    mndt = q.get("mndtId")
    entries = [t for t in creditor.transactions.values() if t.id >= from_id and (not mndt or t.mndt_id == mndt)]
    entries.sort(key=lambda t: t.id)
    return JSONResponse({"Entries": [transaction_json(t, set()) for t in entries[:QUERY_PAGE]]}, headers=headers)


@router.post("/transaction/action")
async def action_route(request: Request) -> Response:
    creditor = authenticate(request)
    state, hooks = state_of(request), hooks_of(request)
    params = await read_params(request)
    t = _find(creditor, params)
    action = params.get("action", "")
    if action == "paid":
        mark_paid(state, hooks, creditor, t, manual=True)
    elif action == "reoffer":
        if t.state not in (ERROR, UNPAID):
            raise ApiError("err_transaction_invalid_action", message=f"Transaction is {t.state}")
        t.state, t.final, t.collection = OPEN, False, None
        t.bkdate = t.bkerror = t.bkmsg = t.bkamount = None
        t.actions.append({"type": "reoffer", "reason": "", "action": OPEN, "at": iso(state.clock.now())})
        _feed(state, creditor, t)
    elif action == "archive":
        t.actions.append({"type": "archive", "reason": "", "action": t.state, "at": iso(state.clock.now())})
    else:
        # backup / unsettle are not simulated.
        raise ApiError("err_transaction_invalid_action", message=f"Action {action!r} is not supported")
    return Response(status_code=204)


@router.post("/transaction/bulk")
async def bulk_route(request: Request) -> JSONResponse:
    creditor = authenticate(request)
    state = state_of(request)
    try:
        items = json.loads(await request.body())
    except ValueError:
        raise ApiError("err_invalid_params", message="Body must be a JSON array") from None
    if not isinstance(items, list) or not items or len(items) > MAX_BULK:
        raise ApiError("err_invalid_params", message=f"Body must be a JSON array of 1..{MAX_BULK} items")
    results: list[dict[str, Any]] = []
    for item in items:
        named = item if isinstance(item, dict) else {}
        entry = {"id": None, "ref": named.get("ref") or None, "mndtId": named.get("mndtId")}
        try:
            if not isinstance(item, dict):
                raise ApiError("err_invalid_params", message="Not a JSON object")
            t = create(state, creditor, item)
        except ApiError as err:
            results.append({**entry, "status": "error", "code": err.code, "message": err.message})
        else:
            results.append({**entry, "id": t.id, "ref": t.ref, "mndtId": t.mndt_id, "status": "ok"})
    batch_id = str(uuid.uuid4())
    ready_at = state.clock.now() + BULK_PROCESSING_SECONDS + len(items) / 1000
    creditor.bulk_batches[batch_id] = BulkBatch(ready_at=ready_at, entries=results)
    return JSONResponse({"batchId": batch_id})


@router.get("/transaction/bulk")
async def bulk_status_route(request: Request) -> Response:
    creditor = authenticate(request)
    batch = creditor.bulk_batches.get(request.query_params.get("batchId", ""))
    if batch is None:
        raise ApiError("err_not_found", extra="batchId")
    if state_of(request).clock.now() < batch.ready_at:
        return Response(status_code=409)  # [OAS]: "Upload still processing" — no error code given
    return JSONResponse(batch.entries)


@router.post("/collect")
async def collect_route(request: Request) -> JSONResponse:
    creditor = authenticate(request)
    state = state_of(request)
    params = await read_params(request)
    # [OAS] /collect: err_no_such_ct "No template specified", err_invalid_ct "Invalid template".
    ct = mandates.template_of(creditor, params.get("ct") or params.get("tc"))
    until = None
    if params.get("until"):
        try:
            until = int(params["until"]) / 1000
        except ValueError:
            raise ApiError("err_invalid_params", extra="until") from None
    if params.get("colltndt"):
        _parse_day(params["colltndt"], "colltndt")  # [OAS]: err_invalid_date "Invalid date format"
    # Every collection goes out as RCUR, a mandate's first one included: SEPA has not required
    # FRST since November 2016, and [OAS]'s example answer has frstMsgId null.
    batch: list[Transaction] = []
    for t in creditor.transactions.values():
        if t.state != OPEN or t.collection is not None or (until is not None and t.date >= until):
            continue
        m = creditor.mandates.get(t.mndt_id)
        if m is not None and m.ct == ct and m.state == SIGNED:
            batch.append(t)
    ids: dict[str, str | None] = {"frstMsgId": None, "rcurMsgId": None}
    if batch:
        state.collect_counter += 1
        ids["rcurMsgId"] = str(state.collect_counter)
        for t in batch:
            t.collection = ids["rcurMsgId"]
    return JSONResponse(ids)
