"""The three feeds - mandates (`GET /mandate`), transactions (`GET /transaction`) and pay links
(`GET /payment/link/feed`) - as server-side queues per API key.

Each GET returns the next page after the key's cursor and moves the cursor; `X-LAST` carries the
sequence number of the last event on a non-empty page. `X-RESUME-AFTER: <seq>` first moves the
cursor to just after that sequence number (events already seen are delivered again). A feed
reset to a moment in time is a control-API operation, like Twikey's dashboard button.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .auth import authenticate
from .deps import state_of
from .errors import ApiError, truthy
from .render import iso, mandate_json, paylink_json, transaction_json
from .state import Creditor, Feed, FeedEvent

router = APIRouter(prefix="/creditor")

FEED_NAMES = {"mandate": "mandate_feed", "transaction": "transaction_feed", "paylink": "paylink_feed"}


def _page_size(request: Request, creditor: Creditor) -> int:
    raw = request.query_params.get("chunkSize")
    if raw is None:
        return creditor.feed_page_size
    try:
        return max(1, min(int(raw), creditor.feed_page_size))
    except ValueError:
        raise ApiError("err_invalid_params", extra="chunkSize") from None


def _resume(request: Request, feed: Feed) -> None:
    raw = request.headers.get("x-resume-after")
    if raw is None or raw.strip() == "":
        return
    try:
        feed.resume_after(int(raw))
    except ValueError:
        raise ApiError("err_invalid_params", extra="X-RESUME-AFTER") from None


def _respond(key: str, items: list[dict[str, Any]], page: list[FeedEvent], extra: dict[str, Any] | None = None):
    headers = {"X-LAST": str(page[-1].seq)} if page else {}
    return JSONResponse({**(extra or {}), key: items}, headers=headers)


def _orgtr(event: FeedEvent) -> dict[str, Any]:
    orgtr: dict[str, Any] = {"CtctDtls": {"EmailAdr": event.originator_email}}
    if event.originator_name:
        orgtr["Nm"] = event.originator_name
    return orgtr


def mandate_message(event: FeedEvent, creditor: Creditor, includes: set[str]) -> dict[str, Any]:
    m = event.obj
    msg: dict[str, Any] = {"EvtId": event.seq, "EvtTime": iso(event.at)}
    if event.kind == "update":
        msg["OrgnlMndtId"] = m.mndt_id
        msg["AmdmntRsn"] = {"Rsn": event.reason, "Orgtr": _orgtr(event)}
        msg["Mndt"] = mandate_json(m, creditor)
    elif event.kind == "cancel":
        msg["OrgnlMndtId"] = m.mndt_id
        msg["CxlRsn"] = {"Rsn": event.reason, "Orgtr": _orgtr(event)}
        if "cancelled_mandate" in includes:
            msg["Mndt"] = mandate_json(m, creditor)
    else:
        msg["Mndt"] = mandate_json(m, creditor)
    return msg


@router.get("/mandate")
async def mandate_feed(request: Request) -> JSONResponse:
    creditor = authenticate(request)
    feed = creditor.mandate_feed
    _resume(request, feed)
    includes = set(request.query_params.getlist("include"))
    types_header = request.headers.get("x-types")
    keep = None
    if types_header:
        types = {t.strip().upper() for t in types_header.split(",")}
        keep = lambda e: e.obj.scheme in types  # noqa: E731
    page = feed.take(_page_size(request, creditor), keep)
    messages = [mandate_message(e, creditor, includes) for e in page]
    return _respond("Messages", messages, page, {"GrpHdr": {"CreDtTm": iso(state_of(request).clock.now())}})


@router.get("/transaction")
async def transaction_feed(request: Request) -> JSONResponse:
    creditor = authenticate(request)
    feed = creditor.transaction_feed
    _resume(request, feed)
    includes = set(request.query_params.getlist("include"))
    page = feed.take(_page_size(request, creditor))
    return _respond("Entries", [transaction_json(e.obj, includes, e.seq) for e in page], page)


@router.get("/payment/link/feed")
async def paylink_feed(request: Request) -> JSONResponse:
    creditor = authenticate(request)
    feed = creditor.paylink_feed
    _resume(request, feed)
    includes = set(request.query_params.getlist("include"))
    everything = truthy(request.query_params.get("all"))
    keep = None if everything else (lambda e: e.kind == "paid")
    page = feed.take(_page_size(request, creditor), keep)
    return _respond("Links", [paylink_json(e.obj, includes, e.seq) for e in page], page)
