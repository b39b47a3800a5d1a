"""The demo tenant and the demo scenario.

``wire_tenant`` connects a tenant to both sandboxes (Twikey API key and templates, Twinfield
refresh token and office) and sets its collection policy — what an operator does once per
tenant; ``wire_demo_tenant`` does it for the demo tenant. ``run_demo`` then walks the whole story
through the gateway as an ERP would, playing the debtor and the bank in the Twikey sandbox, and
prints each step.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx

DEMO_TWIKEY_KEY = "koppel-demo-twikey-api-key"
TWINFIELD_CLIENT = "koppel-sandbox"
TWINFIELD_ORGANISATION = "KOPPEL"
TWINFIELD_OFFICE = "NLA000001"


@dataclass
class Urls:
    gateway: str
    twikey_sandbox: str
    twinfield_sandbox: str


class DemoFailed(Exception):
    pass


def _ok(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 400:
        raise DemoFailed(f"{what}: HTTP {response.status_code} {response.text[:400]}")
    return response.json() if response.content else None


def wire_demo_tenant(urls: Urls, token: str, services: dict[str, str]) -> None:
    """Idempotent: safe to run at every start."""
    wire_tenant(urls, token, services, name="Demo")


# A cheap authenticated read per service: 401 ``unknown_tenant`` until it has heard of the tenant.
_KNOWS_TENANT = {
    "sync": "/v1/tenants/me",
    "mandate": "/v1/mandates?limit=1",
    "collection": "/v1/collection-policy",
    "bookkeeping": "/v1/bookings?limit=1",
    "notify": "/v1/webhook-endpoints",
}


def _honoured(http: httpx.Client, url: str, auth: dict[str, str]) -> bool:
    return http.get(url, headers=auth).status_code != 401


def register_tenant(services: dict[str, str], token: str, name: str, within: float = 60.0) -> dict[str, Any]:
    """Register the token's tenant at sync-svc (idempotent) and wait until every service honours
    its tokens (each learns it from ``tenant.registered``). Returns the registration."""
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30) as http:
        registered = _ok(http.post(f"{services['sync']}/v1/tenants", headers=auth, json={"name": name}), "register")
        for service, path in _KNOWS_TENANT.items():
            url = f"{services[service]}{path}"
            wait_for(
                f"{service}-svc to know tenant {registered['tenant_id']}",
                functools.partial(_honoured, http, url, auth),
                within=within,
                every=0.2,
            )
    return dict(registered)


def wire_tenant(
    urls: Urls,
    token: str,
    services: dict[str, str],
    *,
    twikey_api_key: str = DEMO_TWIKEY_KEY,
    twinfield_organisation: str = TWINFIELD_ORGANISATION,
    twinfield_office: str = TWINFIELD_OFFICE,
    twinfield_client: str = TWINFIELD_CLIENT,
    name: str = "Demo",
) -> None:
    """Register the token's tenant, connect it to a Twikey creditor (by API key, which must exist
    in the sandbox) and a Twinfield organisation and office (which must exist in the sandbox), and
    set its collection policy (auto-collect, 3 lead days). Idempotent."""
    register_tenant(services, token, name)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(timeout=30) as http:
        creditor = _ok(
            http.get(f"{urls.twikey_sandbox}/_sandbox/creditors/{twikey_api_key}"), "Twikey sandbox creditor"
        )
        templates = creditor["templates"]
        _ok(
            http.put(
                f"{services['sync']}/v1/twikey/connection",
                headers=auth,
                json={
                    "api_key": twikey_api_key,
                    "base_url": f"{urls.twikey_sandbox}/creditor",
                    "core_template_id": str(templates["CORE"]),
                    "b2b_template_id": str(templates["B2B"]),
                    "notify_before_collection": False,
                },
            ),
            "Twikey connection",
        )
        _ok(
            http.put(
                f"{services['bookkeeping']}/v1/twinfield/connection",
                headers=auth,
                json={"office": twinfield_office},
            ),
            "Twinfield settings",
        )
        tokens = _ok(
            http.post(
                f"{urls.twinfield_sandbox}/_sandbox/tokens",
                json={"client_id": twinfield_client, "organisation": twinfield_organisation},
            ),
            "Twinfield sandbox token",
        )
        _ok(
            http.post(
                f"{services['bookkeeping']}/v1/twinfield/connection/refresh-token",
                headers=auth,
                json={"refresh_token": tokens["refresh_token"]},
            ),
            "Twinfield connection",
        )
        _ok(
            http.put(
                f"{services['collection']}/v1/collection-policy",
                headers=auth,
                json={"auto_collect": True, "lead_days": 3, "max_amount_cents": 500_000, "notify_debtor": False},
            ),
            "collection policy",
        )


def wait_for(what: str, probe: Callable[[], Any], within: float = 90.0, every: float = 0.5) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out waiting for {what}")
        time.sleep(every)


def run_demo(
    urls: Urls,
    token: str,
    say: Callable[[str], None] = print,
    *,
    office: str = TWINFIELD_OFFICE,
    operator_token: str | None = None,
) -> dict[str, Any]:
    """The whole story, through the gateway. Returns what it saw (tests assert on it). ``token``
    is the ERP's; the bookings are an operator's read, with ``operator_token`` when the ERP's
    token has no operator scope. ``office``: the tenant's Twinfield office in the sandbox."""
    auth = {"Authorization": f"Bearer {token}"}
    operator = {"Authorization": f"Bearer {operator_token or token}"}
    suffix = uuid.uuid4().hex[:6].upper()
    customer = f"C-{suffix}"
    invoice_number = f"INV-{date.today():%Y}-{suffix}"
    amount_cents = 12_100
    seen: dict[str, Any] = {"customer": customer, "invoice_number": invoice_number}
    gw = urls.gateway

    with httpx.Client(timeout=30) as http:
        say(f"1. The ERP prepares a mandate for customer {customer} (POST /v1/mandates)")
        mandate = _ok(
            http.post(
                f"{gw}/v1/mandates",
                headers={**auth, "Idempotency-Key": f"demo-{suffix}"},
                json={
                    "customer": {
                        "number": customer,
                        "name": "An Peeters",
                        "email": "an.peeters@example.be",
                        "language": "nl",
                        "address": "Kerkstraat 1",
                        "zip": "9000",
                        "city": "Gent",
                        "country": "BE",
                    },
                    "scheme": "CORE",
                    "delivery": "email",
                },
            ),
            "prepare mandate",
        )
        seen["mandate"] = mandate
        say(f"   mandate {mandate['mandate_number']} prepared; sign URL {mandate['sign_url']}")

        say("2. The debtor signs it at Twikey (played in the sandbox)")
        _ok(
            http.post(
                f"{urls.twikey_sandbox}/_sandbox/mandates/{mandate['mandate_number']}/sign",
                json={"iban": "BE68539007547034", "bic": "GKCCBEBB", "method": "itsme", "place": "Gent"},
            ),
            "sign in sandbox",
        )
        active = wait_for(
            "the mandate to become active",
            lambda: (
                (m := http.get(f"{gw}/v1/mandates/{mandate['id']}", headers=auth).json()).get("status") == "active"
                and m
            ),
        )
        say(f"   Twikey's webhook → feed → mandate active; IBAN {active['iban']}, signed {active['signature_date']}")

        say(f"3. The invoice is in Twinfield (seeded in the sandbox) and the ERP posts it: {invoice_number}, € 121.00")
        _ok(
            http.post(
                f"{urls.twinfield_sandbox}/_sandbox/offices/{office}/customers",
                json={"customers": [{"code": customer, "name": "An Peeters", "email": "an.peeters@example.be"}]},
            ),
            "seed Twinfield customer",
        )
        _ok(
            http.post(
                f"{urls.twinfield_sandbox}/_sandbox/offices/{office}/invoices",
                json={
                    "invoices": [{"customer": customer, "invoice_number": invoice_number, "amount_cents": amount_cents}]
                },
            ),
            "seed Twinfield invoice",
        )
        invoice = _ok(
            http.post(
                f"{gw}/v1/invoices",
                headers={**auth, "Idempotency-Key": f"demo-inv-{suffix}"},
                json={
                    "invoice_number": invoice_number,
                    "customer_number": customer,
                    "customer_name": "An Peeters",
                    "customer_email": "an.peeters@example.be",
                    "amount_cents": amount_cents,
                    "currency": "EUR",
                    "invoice_date": date.today().isoformat(),
                    "due_date": (date.today() + timedelta(days=3)).isoformat(),
                    "description": f"Invoice {invoice_number}",
                },
            ),
            "post invoice",
        )
        seen["invoice"] = invoice
        say(f"   collection: {_collection(invoice).get('status')} — {_collection(invoice).get('reason')}")

        say("4. Due within the lead days: collected at Twikey")
        submitted = wait_for(
            "the collection to reach Twikey",
            lambda: _collection(inv := _invoice(http, gw, auth, invoice["id"])).get("twikey_transaction_id") and inv,
        )
        tx = _collection(submitted)["twikey_transaction_id"]
        say(f"   Twikey transaction {tx}")

        say("5. The bank pays it (played in the sandbox)")
        _ok(http.post(f"{urls.twikey_sandbox}/_sandbox/transactions/{tx}/paid", json={}), "mark paid")
        paid = wait_for(
            "the invoice to be paid",
            lambda: _collection(inv := _invoice(http, gw, auth, invoice["id"])).get("status") == "paid" and inv,
        )
        seen["paid"] = paid
        say("   transaction feed → collection paid")

        say("6. Booked in Twinfield and matched with the sales invoice")
        booking = wait_for(
            "the booking",
            lambda: next(
                (
                    b
                    for b in http.get(f"{gw}/v1/bookings", headers=operator, params={"status": "booked"})
                    .json()
                    .get("items", [])
                    if b.get("invoice_number") == invoice_number
                ),
                None,
            ),
        )
        seen["booking"] = booking
        say(f"   MEMO {booking.get('memo_number')} matched with the sales invoice; status {booking['status']}")

        say("7. The ERP's event feed (GET /v1/events) tells the whole story")
        events = http.get(f"{gw}/v1/events", headers=auth, params={"limit": 200}).json().get("data", [])
        mine = [
            e["type"]
            for e in events
            if e["data"].get("customer_number") == customer or e["data"].get("invoice_number") == invoice_number
        ]
        seen["events"] = mine
        say("   " + ", ".join(mine))
    say("Done.")
    return seen


def _invoice(http: httpx.Client, gw: str, auth: dict[str, str], invoice_id: str) -> dict[str, Any]:
    return dict(http.get(f"{gw}/v1/invoices/{invoice_id}", headers=auth).json())


def _collection(invoice: dict[str, Any]) -> dict[str, Any]:
    current = invoice.get("collection") or invoice.get("current_collection") or {}
    return dict(current)
