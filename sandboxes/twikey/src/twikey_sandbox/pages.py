"""Minimal HTML pages behind the links the API hands out: the mandate signing page (`url` of an
invite) and the pay page (`url` of a pay link). They let a person play the debtor in the demo;
tests use the JSON control API instead.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse

from . import mandates, paylinks
from .deps import hooks_of, state_of
from .errors import ApiError
from .state import Mandate, Paylink, SandboxState

router = APIRouter(prefix="/_sandbox", include_in_schema=False)

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto}}label{{display:block;margin:.5rem 0}}</style>
</head><body><h1>{title}</h1>{body}<p><small>Twikey sandbox - nothing here is real.</small></p></body></html>"""


def _by_key(state: SandboxState, key: str) -> Mandate:
    for c in state.creditors.values():
        for m in c.mandates.values():
            if m.key == key:
                return m
    raise HTTPException(404, "unknown link")


def _link_by_key(state: SandboxState, key: str) -> Paylink:
    for c in state.creditors.values():
        for p in c.paylinks.values():
            if p.key == key:
                return p
    raise HTTPException(404, "unknown link")


@router.get("/to/{key}", response_class=HTMLResponse)
async def sign_page(key: str, request: Request) -> str:
    m = _by_key(state_of(request), key)
    if m.state != mandates.PREPARED:
        return PAGE.format(title="Mandate", body=f"<p>Mandate {escape(m.mndt_id)} is {escape(m.state)}.</p>")
    body = f"""<p>{escape(state_of(request).creditors[m.api_key].name)} asks you to sign
{escape(m.scheme)} mandate <b>{escape(m.mndt_id)}</b>.</p>
<form method="post"><label>IBAN <input name="iban" value="{escape(m.iban or "BE16645348971174")}"></label>
<label>BIC <input name="bic" value="{escape(m.bic or "JVBABE22")}"></label>
<button name="action" value="sign">Sign with itsme</button>
<button name="action" value="refuse">Refuse</button></form>"""
    return PAGE.format(title="Sign your mandate", body=body)


@router.post("/to/{key}", response_class=HTMLResponse)
async def sign_submit(
    key: str, request: Request, action: str = Form("sign"), iban: str = Form(""), bic: str = Form("")
) -> str:
    state = state_of(request)
    m = _by_key(state, key)
    creditor = state.creditors[m.api_key]
    try:
        if action == "refuse":
            mandates.refuse(hooks_of(request), creditor, m)
        else:
            mandates.sign(state, hooks_of(request), creditor, m, "itsme", iban=iban, bic=bic, place="Sandbox")
    except ApiError as err:
        return PAGE.format(title="Not signed", body=f"<p>{escape(err.message)}</p>")
    return PAGE.format(title="Thank you", body=f"<p>Mandate {escape(m.mndt_id)} is now {escape(m.state)}.</p>")


@router.get("/payment/{key}", response_class=HTMLResponse)
async def pay_page(key: str, request: Request) -> str:
    p = _link_by_key(state_of(request), key)
    if p.state not in ("created", "started", "pending", "declined"):
        return PAGE.format(title="Payment", body=f"<p>This link is {escape(p.state)}.</p>")
    body = f"""<p>Pay <b>EUR {p.amount}</b> for {escape(p.msg)}.</p>
<form method="post"><button name="action" value="pay">Pay with Bancontact</button>
<button name="action" value="decline">Decline</button></form>"""
    return PAGE.format(title="Pay", body=body)


@router.post("/payment/{key}", response_class=HTMLResponse)
async def pay_submit(key: str, request: Request, action: str = Form("pay")) -> str:
    state = state_of(request)
    p = _link_by_key(state, key)
    creditor = state.creditors[p.api_key]
    try:
        if action == "decline":
            paylinks.set_state(state, hooks_of(request), creditor, p, "declined")
        else:
            paylinks.pay(state, hooks_of(request), creditor, p)
    except ApiError as err:
        return PAGE.format(title="Not paid", body=f"<p>{escape(err.message)}</p>")
    return PAGE.format(title="Thank you", body=f"<p>The link is now {escape(p.state)}.</p>")
