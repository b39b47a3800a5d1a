"""The console in a real browser (headless Chromium): sign in, every page renders, a screenshot
of each. The flows that click Retry and Feed reset against live services are in test_flows.py."""

from __future__ import annotations

import uuid

import pytest

from koppel_console.app import build_app
from koppel_console.settings import Settings
from koppel_shared.auth import issue_token
from koppel_shared.settings import DEV_ENCRYPTION_KEY
from koppel_shared.testing.fixtures import settings_for_test

from .browser import browser_page, chromium_available, screenshot, serve

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not chromium_available(), reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
]


async def test_operator_signs_in_and_every_page_renders(database_url: str, broker_prefix: str, cleanup_exchange: None):
    dead = "http://127.0.0.1:9"
    settings = settings_for_test(
        Settings, database_url, broker_prefix, environment="dev", encryption_keys=DEV_ENCRYPTION_KEY,
        known_tenants_only=True, mandate_url=dead, collection_url=dead, sync_url=dead, bookkeeping_url=dead,
        notify_url=dead,
    )  # fmt: skip
    tenant = uuid.uuid4()
    token = issue_token(settings.jwt_secret.get_secret_value(), tenant, ["operator"])
    with serve(build_app(settings)) as base:
        async with browser_page() as page:
            await page.goto(f"{base}/console/mandates")
            assert page.url.endswith("/console/login")
            await page.fill("#token", token)
            await page.click("button[type=submit]")
            await page.wait_for_url("**/console/overview")
            assert str(tenant) in await page.inner_text("header")
            for name, heading in [
                ("overview", "Overview"),
                ("mandates", "Mandates"),
                ("invoices", "Invoices and collections"),
                ("bookings", "Bookings in Twinfield"),
                ("feeds", "Twikey feeds"),
                ("deliveries", "ERP webhook deliveries"),
                ("dead-letters", "Dead letters"),
            ]:
                await page.click(f"header nav a[href='/console/{name}']")
                await page.wait_for_url(f"**/console/{name}*")
                assert await page.inner_text("h1") == heading
                await screenshot(page, f"console-{name}-service-down")
            await page.click("header nav a[href='/console/bookings']")
            await page.click("#tab-errors")
            await page.wait_for_url("**/console/bookings?tab=errors")
            assert await page.get_attribute("#tab-errors", "class") == "on"
