"""A brand-new tenant onboarded from the console's sign-in page alone, in Chromium, on a system
started as a newcomer starts it (``koppel run``): the admin token it wrote creates the tenant;
its Twikey key is entered and tested, Twinfield connected through the sandbox's consent page, the
office and accounts picked from the office's own ledger, a policy previewed and saved, an ERP
endpoint added (a receiver in this test) and an ERP token issued; the first-run checklist is then
gone. The demo story then runs for that tenant through the gateway with the ERP token, and the
receiver checks the signed events it got. Screenshots of each settings page land in the test's tmp
dir."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from koppel_cli.demo import run_demo, wait_for
from koppel_testkit.launch import System

from .browser import browser_page, chromium_available, serve

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed"),
]


class Receiver:
    """The ERP's webhook endpoint: keeps every request it gets."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self.lock:
            self.received.append((headers, body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def events(self, secret: str) -> list[dict[str, Any]]:
        """The events whose Standard Webhooks signature checks out with ``secret``."""
        verified = []
        with self.lock:
            received = list(self.received)
        for headers, body in received:
            try:
                verified.append(Webhook(secret).verify(body, headers))
            except Exception:  # signed with another secret (or not at all): not counted
                continue
        return verified


async def shot(page: Any, folder: Path, name: str) -> None:
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def onboard(system: System, admin: str, hook: str, shots: Path) -> dict[str, Any]:
    """Everything the operator does in the browser; returns what the test needs afterwards."""
    urls = system.urls
    suffix = uuid.uuid4().hex[:6].upper()
    found: dict[str, Any] = {"office": f"NLA{suffix}"}
    async with httpx.AsyncClient(timeout=30) as http:
        # The outside world: the new tenant's creditor at Twikey, its organisation at Twinfield.
        creditor = (
            await http.post(f"{urls.twikey_sandbox}/_sandbox/creditors", json={"name": f"Onboard {suffix}"})
        ).json()
        organisation = f"ORG{suffix}"
        created = await http.post(
            f"{urls.twinfield_sandbox}/_sandbox/organisations",
            json={"code": organisation, "name": f"Onboard {suffix}", "offices": [{"code": found["office"],
                  "name": f"Onboard {suffix} BV"}]},
        )  # fmt: skip
        created.raise_for_status()

    async with browser_page() as page:
        await page.goto(f"{urls.gateway}/console/login")
        await shot(page, shots, "01-login")
        await page.fill("#name", f"Onboard {suffix} BV")
        await page.fill("#admin_token", admin)
        await page.click("#new-tenant-form button[type=submit]")
        await page.wait_for_url("**/console/overview")
        await settle(page, system, creditor, organisation, hook, shots, found)
    return found


async def settle(
    page: Any, system: System, creditor: dict[str, Any], organisation: str, hook: str, shots: Path,
    found: dict[str, Any],
) -> None:  # fmt: skip
    """From the overview of a new tenant to a complete checklist."""
    urls = system.urls
    found["tenant"] = (await page.inner_text("header .who code")).strip()
    assert await page.locator("#checklist li.todo").count() == 8
    await shot(page, shots, "02-overview-checklist")

    # Twikey: the key and the template ids as Twikey's dashboard shows them, then Test.
    await page.click("#todo-twikey_key a")
    await page.wait_for_url("**/console/settings/twikey")
    await page.fill("#api_key", creditor["api_key"])
    await page.fill("#base_url", f"{urls.twikey_sandbox}/creditor")
    await page.fill("#core_template_id", str(creditor["templates"]["CORE"]))
    await page.fill("#b2b_template_id", str(creditor["templates"]["B2B"]))
    await page.click("#twikey-form button[type=submit]")
    await page.wait_for_url("**/console/settings/twikey?flash=*")
    assert creditor["api_key"] not in await page.content()  # write-only
    await page.click("#twikey-test button[type=submit]")
    await page.wait_for_url("**/console/settings/twikey?flash=*")
    assert "Twikey accepted the key" in await page.inner_text("#twikey-test-result")
    assert await page.locator("#template-ok-CORE").count() == 1
    webhook_url = await page.input_value("#webhook-url")
    assert webhook_url.endswith(f"/webhooks/twikey/{found['tenant']}")
    await shot(page, shots, "03-settings-twikey")
    async with httpx.AsyncClient(timeout=30) as http:  # pasted into Twikey's settings
        patched = await http.patch(
            f"{urls.twikey_sandbox}/_sandbox/creditors/{creditor['api_key']}", json={"webhook_url": webhook_url}
        )
        patched.raise_for_status()

    # Twinfield: Connect → the sandbox's consent page → back in the console.
    await page.click("#settings-tab-twinfield")
    await page.wait_for_url("**/console/settings/twinfield")
    await page.click("#twinfield-connect button[type=submit]")
    await page.wait_for_url(f"{urls.twinfield_sandbox}/**")
    await shot(page, shots, "04-twinfield-consent")
    await page.select_option("select[name=organisation]", organisation)
    await page.click("button[value=allow]")
    await page.wait_for_url("**/console/settings/twinfield?flash=*")
    assert "Twinfield connected" in await page.inner_text(".flash")
    assert "connected" in await page.inner_text("#twinfield-state")
    await page.select_option("#office-pick", found["office"])
    await page.click("#twinfield-office-pick button[type=submit]")
    await page.wait_for_url(f"**/console/settings/twinfield?office={found['office']}")
    await page.select_option("#debtor_account", "1300")
    await page.select_option("#direct_debit_account", "1105")
    await page.select_option("#paylink_account", "1110")
    await page.click("#twinfield-form button[type=submit]")
    await page.wait_for_url("**/console/settings/twinfield?flash=*")
    assert "saved" in await page.inner_text(".flash")
    await shot(page, shots, "05-settings-twinfield")

    # Collection policy: preview first, then save.
    await page.click("#settings-tab-policy")
    await page.wait_for_url("**/console/settings/policy")
    await page.fill("#lead_days", "3")
    await page.fill("#max_amount_eur", "5000")
    await page.uncheck("#notify_debtor")
    await page.click("#policy-preview")
    await page.wait_for_url("**/console/settings/policy/preview")
    assert await page.locator("#preview").count() == 1, await page.inner_text("#settings-policy")
    await shot(page, shots, "06-settings-policy-preview")
    await page.click("#policy-save")
    await page.wait_for_url("**/console/settings/policy?flash=*")
    await shot(page, shots, "07-settings-policy")

    # ERP endpoint: added, its secret copied (shown once), a test event sent.
    await page.click("#settings-tab-endpoints")
    await page.wait_for_url("**/console/settings/endpoints")
    await page.fill("#url", hook)
    await page.click("#endpoint-form button[type=submit]")
    await page.wait_for_url("**/console/settings/endpoints?flash=*")
    found["secret"] = (await page.inner_text("#secret-value")).strip()
    await shot(page, shots, "08-settings-endpoints-secret")
    await page.click("#endpoints tbody tr button:has-text('Send test')")
    await page.wait_for_url("**/console/settings/endpoints?flash=*")
    assert "Test event sent" in await page.inner_text(".flash")
    await shot(page, shots, "09-settings-endpoints")

    # ERP token: issued, shown once.
    await page.click("#settings-tab-tokens")
    await page.wait_for_url("**/console/settings/tokens")
    await page.fill("#label", "ERP production")
    await page.click("#token-form button[type=submit]")
    await page.wait_for_url("**/console/settings/tokens?flash=*")
    found["erp_token"] = (await page.inner_text("#secret-value")).strip()
    await shot(page, shots, "10-settings-tokens")

    await page.click("header nav a[href='/console/overview']")
    await page.wait_for_url("**/console/overview")
    assert await page.locator("#checklist").count() == 0, await page.inner_text("#checklist")
    await shot(page, shots, "11-overview-complete")
    found["operator_token"] = next(
        c["value"] for c in await page.context.cookies() if c["name"] == "koppel_console_token"
    )


def test_a_new_tenant_is_onboarded_in_the_browser_and_the_story_runs_for_it(system: System, tmp_path: Path):
    admin = system.admin_token  # what `koppel run` wrote to var/admin-token for this system
    receiver = Receiver()
    with serve(receiver) as hook_base:
        found = asyncio.run(onboard(system, admin, f"{hook_base}/koppel/webhooks", tmp_path))
        # The test event reached the receiver, signed with the secret the console showed once.
        test_events = wait_for(
            "the test event", lambda: [e for e in receiver.events(found["secret"]) if e.get("type") == "koppel.test"]
        )
        assert test_events

        seen = run_demo(
            system.urls, found["erp_token"], say=lambda _: None, office=found["office"],
            operator_token=found["operator_token"],
        )  # fmt: skip
        assert seen["paid"]["collection"]["status"] == "paid"
        assert seen["booking"]["status"] in ("matched", "booked")
        with httpx.Client(timeout=30) as http:
            memos = http.get(
                f"{system.urls.twinfield_sandbox}/_sandbox/offices/{found['office']}/transactions",
                params={"daybook": "MEMO"},
            ).json()
        items = memos if isinstance(memos, list) else memos.get("transactions", memos.get("items", []))
        assert len([t for t in items if seen["invoice_number"] in str(t)]) == 1  # booked in this tenant's office

        def story_events() -> list[str] | None:
            types = [
                e["type"]
                for e in receiver.events(found["secret"])
                if e.get("data", {}).get("customer_number") == seen["customer"]
                or e.get("data", {}).get("invoice_number") == seen["invoice_number"]
            ]
            wanted = ("mandate.signed", "collection.paid", "booking.booked")
            return types if all(w in types for w in wanted) else None

        types = wait_for("the signed events at the ERP's endpoint", story_events, within=120)
        assert all(t in types for t in ("mandate.prepared", "mandate.signed", "collection.submitted"))
    assert len(list(tmp_path.glob("*.png"))) == 11
