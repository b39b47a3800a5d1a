"""End to end, as an ERP and an operator would: `koppel run` brings up everything (services,
gateway, sandboxes, console, demo tenant); the flows go through the gateway, all services,
RabbitMQ, PostgreSQL and both sandboxes."""

from __future__ import annotations

import json
import signal
import time
import uuid
from datetime import date, timedelta

import httpx
import pytest

from koppel_cli.demo import TWINFIELD_OFFICE, register_tenant, run_demo, wait_for
from koppel_cli.localrun import SERVICES
from koppel_shared.auth import issue_token
from koppel_shared.settings import IssuerSettings
from koppel_testkit.launch import System, running_system

from .browser import browser_page, chromium_available, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def auth(system: System) -> dict[str, str]:
    return {"Authorization": f"Bearer {system.token}"}


def test_the_demo_walks_the_whole_story(system: System):
    seen = run_demo(system.urls, system.token, say=lambda _: None)
    assert seen["paid"]["collection"]["status"] == "paid"
    assert seen["booking"]["status"] in ("matched", "booked")
    # The ERP heard every step, in order, from the event feed.
    events = seen["events"]
    for expected in ["mandate.prepared", "mandate.signed", "collection.submitted", "collection.paid", "booking.booked"]:
        assert expected in events
    assert events.index("mandate.signed") < events.index("collection.paid") < events.index("booking.booked")
    # And Twinfield's own records: one MEMO for this payment, matched.
    with httpx.Client(timeout=30) as http:
        memos = http.get(
            f"{system.urls.twinfield_sandbox}/_sandbox/offices/{TWINFIELD_OFFICE}/transactions",
            params={"daybook": "MEMO"},
        ).json()
    items = memos if isinstance(memos, list) else memos.get("transactions", memos.get("items", []))
    mine = [t for t in items if seen["invoice_number"] in str(t)]
    assert len(mine) == 1


def test_invoice_not_found_in_twinfield_lands_on_errors_and_retry_from_the_console_books_it(system: System):
    """The operator's path: a payment whose sales invoice is not in Twinfield shows on the Errors
    tab with Twinfield's reason; once the invoice exists, Retry in the console books it."""
    if not chromium_available():
        pytest.skip("Debian's chromium is not installed")
    seen = _paid_without_twinfield_invoice(system)
    invoice_number = seen["invoice_number"]
    with httpx.Client(timeout=30) as http:
        booking = wait_for(
            "the booking error",
            lambda: next(
                (
                    b
                    for b in http.get(
                        f"{system.urls.gateway}/v1/bookings", headers=auth(system), params={"status": "error"}
                    ).json()["items"]
                    if b["invoice_number"] == invoice_number
                ),
                None,
            ),
            within=120,
        )
        # The operator fixes it in Twinfield: the sales invoice is entered.
        http.post(
            f"{system.urls.twinfield_sandbox}/_sandbox/offices/{TWINFIELD_OFFICE}/invoices",
            json={
                "invoices": [{"customer": seen["customer"], "invoice_number": invoice_number, "amount_cents": 12_100}]
            },
        ).raise_for_status()

    import asyncio

    async def click_retry() -> None:
        async with browser_page() as page:
            base = system.urls.gateway
            await page.goto(f"{base}/console/login")
            await page.fill("#token", system.token)
            await page.click("button[type=submit]")
            await page.wait_for_url("**/console/overview")  # the landing page
            await screenshot(page, "console-overview")
            await page.goto(f"{base}/console/bookings?tab=errors")
            row = page.locator(f"#bookings tr[data-id='{booking['id']}']")
            await row.locator("summary").click()
            assert "invoice" in (await row.inner_text()).lower()
            await screenshot(page, "console-bookings-errors")
            await row.locator("button", has_text="Retry").click()
            await page.wait_for_url("**/console/bookings?tab=errors&flash=*")
            assert "Retry scheduled" in await page.inner_text(".flash")

    asyncio.run(click_retry())
    with httpx.Client(timeout=30) as http:
        booked = wait_for(
            "the retried booking",
            lambda: (
                http.get(f"{system.urls.gateway}/v1/bookings/{booking['id']}", headers=auth(system)).json()["status"]
                in ("matched", "booked")
            ),
            within=120,
        )
    assert booked


def test_feed_reset_from_the_console_replays_and_doubles_nothing(system: System):
    if not chromium_available():
        pytest.skip("Debian's chromium is not installed")
    seen = run_demo(system.urls, system.token, say=lambda _: None)
    with httpx.Client(timeout=30) as http:
        before_bookings = http.get(
            f"{system.urls.gateway}/v1/bookings", headers=auth(system), params={"status": "booked"}
        ).json()["items"]
        before_events = http.get(f"{system.urls.gateway}/v1/events", headers=auth(system), params={"limit": 500}).json()

    import asyncio

    async def reset_feeds() -> None:
        async with browser_page() as page:
            base = system.urls.gateway
            await page.goto(f"{base}/console/login")
            await page.fill("#token", system.token)
            await page.click("button[type=submit]")
            await page.goto(f"{base}/console/feeds")
            for feed in ("mandate", "transaction"):
                await page.select_option("#feed-reset select[name=feed]", feed)
                await page.click("#feed-reset button[type=submit]")
                await page.wait_for_url("**/console/feeds?flash=*")
                assert f"Feed {feed} reset" in await page.inner_text(".flash")
            await screenshot(page, "console-feeds-after-reset")
            for name in ("invoices", "deliveries", "dead-letters", "api-docs"):
                await page.goto(f"{base}/console/{name}")
                await screenshot(page, f"console-{name}")
            assert "POST /v1/mandates" in await page.inner_text("#api-mandate")
            assert "GET /v1/events" in await page.inner_text("#api-notify")

    asyncio.run(reset_feeds())
    time.sleep(5)  # the replay drains through the same path; nothing new may come of it
    with httpx.Client(timeout=30) as http:
        feeds = http.get(f"{system.service_url('sync')}/v1/twikey/feeds", headers=auth(system)).json()["feeds"]
        wait_for(
            "the replay to be drained",
            lambda: all(f.get("last_drain_at") for f in feeds),
        )
        after_bookings = http.get(
            f"{system.urls.gateway}/v1/bookings", headers=auth(system), params={"status": "booked"}
        ).json()["items"]
        after_events = http.get(f"{system.urls.gateway}/v1/events", headers=auth(system), params={"limit": 500}).json()
        memos = http.get(
            f"{system.urls.twinfield_sandbox}/_sandbox/offices/{TWINFIELD_OFFICE}/transactions",
            params={"daybook": "MEMO"},
        ).json()
        twikey_tx = http.get(f"{system.urls.twikey_sandbox}/_sandbox/transactions").json()
    assert len(after_bookings) == len(before_bookings)
    assert len(after_events["data"]) == len(before_events["data"])
    items = memos if isinstance(memos, list) else memos.get("transactions", memos.get("items", []))
    assert len([t for t in items if seen["invoice_number"] in str(t)]) == 1
    tx_items = twikey_tx if isinstance(twikey_tx, list) else twikey_tx.get("items", twikey_tx.get("transactions", []))
    assert len([t for t in tx_items if seen["invoice_number"] in str(t)]) == 1


def test_a_failed_collection_shows_the_banks_r_code_and_its_meaning(system: System):
    seen = _submitted(system, in_twinfield=True)
    with httpx.Client(timeout=30) as http:
        http.post(
            f"{system.urls.twikey_sandbox}/_sandbox/transactions/{seen['tx']}/fail",
            json={"code": "AM04", "message": "Insufficient funds", "state": "ERROR"},
        ).raise_for_status()
        invoice = wait_for(
            "the failure",
            lambda: (
                (
                    inv := http.get(
                        f"{system.urls.gateway}/v1/invoices/{seen['invoice_id']}", headers=auth(system)
                    ).json()
                )
                and inv["attempts"][0]["status"] == "failed"
                and inv
            ),
        )
        failed = invoice["attempts"][0]
        assert failed["r_code"] == "AM04" and "funds" in (failed.get("r_code_meaning") or "").lower()
        events = http.get(f"{system.urls.gateway}/v1/events", headers=auth(system), params={"limit": 500}).json()[
            "data"
        ]
    mine = [e for e in events if e["data"].get("invoice_number") == seen["invoice_number"]]
    assert "collection.failed" in [e["type"] for e in mine]


def test_a_reversal_after_paid_reverses_the_booking(system: System):
    seen = _submitted(system, in_twinfield=True)
    gw, a = system.urls.gateway, auth(system)
    with httpx.Client(timeout=30) as http:
        http.post(f"{system.urls.twikey_sandbox}/_sandbox/transactions/{seen['tx']}/paid", json={}).raise_for_status()
        booking = wait_for(
            "the booking",
            lambda: next(
                (
                    b
                    for b in http.get(f"{gw}/v1/bookings", headers=a, params={"status": "booked"}).json()["items"]
                    if b["invoice_number"] == seen["invoice_number"]
                ),
                None,
            ),
            within=120,
        )
        http.post(
            f"{system.urls.twikey_sandbox}/_sandbox/transactions/{seen['tx']}/reverse", json={"code": "MD06"}
        ).raise_for_status()
        wait_for(
            "the collection to be reversed",
            lambda: (
                http.get(f"{gw}/v1/invoices/{seen['invoice_id']}", headers=a).json()["attempts"][0]["status"]
                == "reversed"
            ),
        )
        reversed_booking = wait_for(
            "the booking to be reversed",
            lambda: (
                (b := http.get(f"{gw}/v1/bookings/{booking['id']}", headers=a).json())["status"] == "reversed" and b
            ),
            within=120,
        )
    assert reversed_booking["reversal_memo_number"]


def test_b2b_mandate_rejected_by_the_debtors_bank(system: System):
    import uuid

    gw, a = system.urls.gateway, auth(system)
    number = f"B-{uuid.uuid4().hex[:6].upper()}"
    with httpx.Client(timeout=30) as http:
        mandate = http.post(
            f"{gw}/v1/mandates",
            headers=a,
            json={"customer": {"number": number, "company_name": "De Korf BV", "email": "ap@dekorf.be"},
                  "scheme": "B2B", "delivery": "email"},
        ).json()  # fmt: skip
        assert mandate["status"] == "prepared", mandate
        sandbox = f"{system.urls.twikey_sandbox}/_sandbox/mandates/{mandate['mandate_number']}"
        http.post(
            f"{sandbox}/sign", json={"iban": "BE68539007547034", "bic": "GKCCBEBB", "method": "itsme"}
        ).raise_for_status()
        http.post(f"{sandbox}/bank/reject", json={"reason": "not authorised by the debtor's bank"}).raise_for_status()
        rejected = wait_for(
            "the rejection",
            lambda: (
                (m := http.get(f"{gw}/v1/mandates/{mandate['id']}", headers=a).json())["status"] == "rejected" and m
            ),
        )
        view = http.get(f"{gw}/v1/customers/{number}/mandates", headers=a).json()
    assert rejected["status"] == "rejected" and view["collectable"] is False


def test_no_secret_in_clear_text_in_any_database_or_log(system: System):
    """The Twikey API key and a Twinfield refresh token, both in use, appear in no database dump
    of any service and in no log line of Koppel's processes during the whole run."""
    import shutil
    import subprocess

    from koppel_cli.demo import DEMO_TWIKEY_KEY, TWINFIELD_CLIENT, TWINFIELD_ORGANISATION
    from koppel_cli.localrun import SERVICES

    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    with httpx.Client(timeout=30) as http:
        tokens = http.post(
            f"{system.urls.twinfield_sandbox}/_sandbox/tokens",
            json={"client_id": TWINFIELD_CLIENT, "organisation": TWINFIELD_ORGANISATION},
        ).json()
        http.post(
            f"{system.service_url('bookkeeping')}/v1/twinfield/connection/refresh-token",
            headers=auth(system),
            json={"refresh_token": tokens["refresh_token"]},
        ).raise_for_status()
    run_demo(system.urls, system.token, say=lambda _: None)  # both secrets really used
    secrets = {"twikey api key": DEMO_TWIKEY_KEY, "twinfield refresh token": tokens["refresh_token"]}
    for name in SERVICES:
        dump = subprocess.run(
            ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", f"{system.plan.prefix}koppel_{name}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert len(dump) > 1000
        for what, value in secrets.items():
            assert value not in dump, f"{what} in clear text in the {name} database"
    # Koppel's own processes (the sandboxes stand in for Twikey and Twinfield, which know the secrets).
    logs = "".join(
        p.read_text(errors="replace") for p in system.log_dir.glob("*.log") if not p.name.startswith("sandbox-")
    )
    assert len(logs) > 1000
    for what, value in secrets.items():
        assert value not in logs, f"{what} in clear text in the logs"


def test_tokens_of_an_unregistered_tenant_are_refused_everywhere_until_it_is_registered(system: System):
    """A validly signed token names a tenant nobody registered: no service may act on it (it used
    to create invoices that no connection could ever collect or book)."""
    tenant = uuid.uuid4()
    secret = IssuerSettings().signing_key
    auth = {"Authorization": f"Bearer {issue_token(secret, tenant, ['erp', 'operator'])}"}
    gw = system.urls.gateway
    invoice = {
        "invoice_number": f"UNREG-{tenant.hex[:6]}",
        "customer_number": "C-UNREG",
        "amount_cents": 1_000,
        "invoice_date": date.today().isoformat(),
        "due_date": (date.today() + timedelta(days=10)).isoformat(),
    }
    with httpx.Client(timeout=30) as http:
        refused = http.post(f"{gw}/v1/invoices", headers=auth, json=invoice)
        assert refused.status_code == 401, refused.text
        assert refused.json()["code"] == "unknown_tenant"
        for path in ("/v1/mandates", "/v1/bookings", "/v1/events", "/v1/twikey/feeds", "/v1/webhook-endpoints"):
            answer = http.get(f"{gw}{path}", headers=auth)
            assert (answer.status_code, answer.json()["code"]) == (401, "unknown_tenant"), path

        registered = register_tenant({service: gw for service in SERVICES}, auth["Authorization"][7:], "Late")
        assert registered["tenant_id"] == str(tenant)
        # The refused request left nothing behind; now the same request is taken.
        assert http.get(f"{gw}/v1/invoices", headers=auth).json()["items"] == []
        assert http.post(f"{gw}/v1/invoices", headers=auth, json=invoice).status_code == 201
        again = http.post(f"{gw}/v1/tenants", headers=auth, json={"name": "Late again"})
        assert again.status_code == 200 and again.json()["name"] == "Late"


def test_koppel_tenant_create_registers_a_tenant_whose_token_every_service_honours(system: System):
    from typer.testing import CliRunner

    from koppel_cli.main import app

    result = CliRunner().invoke(app, ["tenant", "create", "--name", "Acme BV", "--gateway", system.urls.gateway])
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    auth = {"Authorization": f"Bearer {created['token']}"}
    with httpx.Client(timeout=30) as http:
        me = http.get(f"{system.urls.gateway}/v1/tenants/me", headers=auth).json()
        assert me["tenant_id"] == created["tenant_id"] and me["name"] == "Acme BV"
        assert http.get(f"{system.urls.gateway}/v1/invoices", headers=auth).status_code == 200


def test_the_admin_token_koppel_run_wrote_onboards_a_tenant_whose_revoked_token_every_service_refuses(
    system: System,
):
    """From the browser's side, through the gateway: the admin token creates a tenant, its operator
    token makes an ERP token, and once revoked that token is refused by every service."""
    gw = system.urls.gateway
    name = f"Onboarded {uuid.uuid4().hex[:6]}"
    with httpx.Client(timeout=30) as http:
        admin = {"Authorization": f"Bearer {system.admin_token}"}
        assert http.get(f"{gw}/v1/invoices", headers=admin).status_code == 403  # not a tenant's token
        created = http.post(f"{gw}/v1/tenants", headers=admin, json={"name": name})
        assert created.status_code == 201, created.text
        operator = {"Authorization": f"Bearer {created.json()['operator_token']}"}
        made = http.post(f"{gw}/v1/tokens", headers=operator, json={"label": "ERP", "scopes": ["erp", "operator"]})
        assert made.status_code == 201, made.text
        erp = {"Authorization": f"Bearer {made.json()['token']}"}
        paths = ("/v1/invoices", "/v1/mandates", "/v1/bookings", "/v1/webhook-endpoints", "/v1/tokens")
        wait_for(
            "the tenant known everywhere",
            lambda: all(http.get(f"{gw}{path}", headers=erp).status_code == 200 for path in paths),
            within=30,
        )
        assert http.delete(f"{gw}/v1/tokens/{made.json()['id']}", headers=operator).status_code == 204
        wait_for(
            "the token refused everywhere",
            lambda: all(http.get(f"{gw}{path}", headers=erp).json().get("code") == "token_revoked" for path in paths),
            within=15,
        )
        assert http.get(f"{gw}/v1/invoices", headers=operator).status_code == 200


def _submitted(system: System, in_twinfield: bool) -> dict[str, str]:
    """A signed mandate and an invoice collected at Twikey (not yet answered by the bank). With
    ``in_twinfield`` the sales invoice also exists in Twinfield."""
    import uuid
    from datetime import date, timedelta

    suffix = uuid.uuid4().hex[:6].upper()
    customer, invoice_number = f"C-{suffix}", f"INV-X-{suffix}"
    gw, a = system.urls.gateway, auth(system)
    with httpx.Client(timeout=30) as http:
        mandate = http.post(
            f"{gw}/v1/mandates",
            headers=a,
            json={"customer": {"number": customer, "name": "Bart Claes", "email": "bart@example.be"}, "scheme": "CORE",
                  "delivery": "email"},
        ).json()  # fmt: skip
        http.post(
            f"{system.urls.twikey_sandbox}/_sandbox/mandates/{mandate['mandate_number']}/sign",
            json={"iban": "BE68539007547034", "bic": "GKCCBEBB", "method": "itsme"},
        ).raise_for_status()
        wait_for(
            "active", lambda: http.get(f"{gw}/v1/mandates/{mandate['id']}", headers=a).json()["status"] == "active"
        )
        twinfield = f"{system.urls.twinfield_sandbox}/_sandbox/offices/{TWINFIELD_OFFICE}"
        http.post(
            f"{twinfield}/customers",
            json={"customers": [{"code": customer, "name": "Bart Claes", "email": "bart@example.be"}]},
        ).raise_for_status()
        if in_twinfield:
            http.post(
                f"{twinfield}/invoices",
                json={"invoices": [{"customer": customer, "invoice_number": invoice_number, "amount_cents": 12_100}]},
            ).raise_for_status()
        invoice = http.post(
            f"{gw}/v1/invoices",
            headers=a,
            json={
                "invoice_number": invoice_number,
                "customer_number": customer,
                "amount_cents": 12_100,
                "currency": "EUR",
                "invoice_date": date.today().isoformat(),
                "due_date": (date.today() + timedelta(days=2)).isoformat(),
                "description": "Invoice " + invoice_number,
            },
        ).json()
        tx = wait_for(
            "submitted",
            lambda: (http.get(f"{gw}/v1/invoices/{invoice['id']}", headers=a).json()["collection"] or {}).get(
                "twikey_transaction_id"
            ),
        )
    return {"customer": customer, "invoice_number": invoice_number, "invoice_id": invoice["id"], "tx": str(tx)}


def _paid_without_twinfield_invoice(system: System) -> dict[str, str]:
    """Like the demo up to the payment, but the sales invoice is missing in Twinfield."""
    seen = _submitted(system, in_twinfield=False)
    httpx.post(f"{system.urls.twikey_sandbox}/_sandbox/transactions/{seen['tx']}/paid", json={}).raise_for_status()
    return seen


def test_gateway_redirects_keep_the_host_and_port_the_client_used(system: System):
    # As seen behind a published port or a proxy: the client's host and port differ from nginx's own.
    public = httpx.URL("http://koppel.example:9443")
    with httpx.Client(timeout=10, follow_redirects=False) as http:
        answer = http.get(f"{system.urls.gateway}/console", headers={"Host": "koppel.example:9443"})
        assert answer.status_code in (301, 302, 307, 308), answer.status_code
        target = public.join(answer.headers["location"])
        assert (target.host, target.port, target.path) == ("koppel.example", 9443, "/console/")
        assert http.get(f"{system.urls.gateway}{target.path}").status_code < 400


# Last in this module: it stops the module's system (Ctrl-C) and starts it again.
def test_koppel_run_stopped_and_started_again_carries_on_where_it_stopped(system: System):
    before = run_demo(system.urls, system.token, say=lambda _: None)
    number = before["mandate"]["mandate_number"]
    # Ctrl-C stops everything cleanly.
    system.process.send_signal(signal.SIGINT)
    assert system.process.wait(timeout=90) == 0
    wait_for("the last words of koppel run", lambda: "stopped." in "".join(system.output), within=10, every=0.1)
    for port in (system.plan.port(8080), system.plan.port(8101), system.plan.port(8601)):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)

    with running_system(system.log_dir.parent, again=system) as again, httpx.Client(timeout=30) as http:
        # Koppel's records and the sandboxes' agree after the restart: the mandate signed before
        # it is signed on both sides, and the earlier payment's MEMO is still in Twinfield.
        mandate = http.get(f"{again.urls.gateway}/v1/mandates/{before['mandate']['id']}", headers=auth(again))
        assert mandate.status_code == 200 and mandate.json()["status"] == "active"
        at_twikey = http.get(f"{again.urls.twikey_sandbox}/_sandbox/mandates/{number}")
        assert at_twikey.status_code == 200 and at_twikey.json()["state"] == "SIGNED"
        memos = http.get(
            f"{again.urls.twinfield_sandbox}/_sandbox/offices/{TWINFIELD_OFFICE}/transactions",
            params={"daybook": "MEMO"},
        ).text
        assert before["invoice_number"] in memos

        after = run_demo(again.urls, again.token, say=lambda _: None)
        assert after["paid"]["collection"]["status"] == "paid"
        assert after["booking"]["status"] in ("matched", "booked")
        assert after["mandate"]["mandate_number"] != number
