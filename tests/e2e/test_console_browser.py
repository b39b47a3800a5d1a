"""The console in a real browser (headless Chromium): sign in, every page renders, a screenshot
of each; then in front of the real service APIs with a tenant holding 100,000 invoices: the
overview and its charts (served by the console alone, readable without JavaScript), search,
paging and a mandate's page. The flows that click Retry and Feed reset against live services are
in test_flows.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from koppel_console.app import build_app
from koppel_console.settings import Settings
from koppel_shared.auth import issue_token
from koppel_shared.settings import DEV_ENCRYPTION_KEY
from koppel_shared.testing.fixtures import TEST_SIGNING_KEY, settings_for_test

from .browser import browser_page, chromium_available, screenshot, serve
from .console_stack import Stack, mandate_with_history, running

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
    token = issue_token(TEST_SIGNING_KEY, tenant, ["operator"])
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


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[Stack]:
    async with running(invoices=100_000) as running_stack:
        yield running_stack


async def sign_in(page: Any, stack: Stack) -> None:
    await page.goto(f"{stack.console}/console/login")
    await page.fill("#token", stack.token)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/console/overview")


async def test_overview_of_a_tenant_with_100000_invoices_with_charts_served_by_the_console_alone(stack: Stack):
    async with browser_page() as page:
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        await sign_in(page, stack)
        assert await page.inner_text("h1") == "Overview"
        # 100,000 invoices: one in 50 not looked at yet (those are all in the paid tenth), the others
        # a tenth each in the seeded statuses
        rows = await page.locator("#card-invoices table tr").all_inner_texts()
        assert dict(row.split("\t") for row in rows) == {
            "open": "2000", "paid": "58000", "submitted": "10000", "scheduled": "10000", "failed": "10000",
            "skipped": "10000",
        }  # fmt: skip
        assert await page.inner_text("#oldest-open-invoice") in ("369 d", "370 d")
        assert await page.inner_text("#oldest-unsigned-mandate") == "12 d"  # the 300th created, hourly, prepared
        assert await page.inner_text("#bookings-error") == str(sum(1 for i in range(1, 100_001) if i % 100 == 3))
        assert await page.inner_text("#failing-endpoints") == "1"
        health = await page.inner_text("#card-health")
        assert "paylink feed last read" in health and "2 h" in health and "Twikey updates parked" in health
        for chart, title in [("#chart-per-day", "Collected, paid and booked per day"), ("#chart-latency", "latency")]:
            label = await page.get_attribute(f"{chart} svg", "aria-label")
            assert label is not None and title in label
        await screenshot(page, "console-overview-100000-invoices")
        # everything on the page came from the console itself: no CDN, no other host
        assert requested and all(url.startswith(stack.console) for url in requested), requested

        # and it reads without JavaScript: the charts are in the HTML as SVG
        context = await page.context.browser.new_context(java_script_enabled=False)
        try:
            await context.add_cookies(await page.context.cookies())
            plain = await context.new_page()
            await plain.goto(f"{stack.console}/console/overview")
            assert await plain.locator("#chart-per-day svg .series").count() >= 3
        finally:
            await context.close()


async def test_invoices_searched_and_paged_and_a_mandate_with_its_history(stack: Stack):
    async with browser_page() as page:
        await sign_in(page, stack)
        await page.click("header nav a[href='/console/invoices']")
        await page.wait_for_url("**/console/invoices")
        first = await page.locator("#invoices tbody tr td:first-child").all_inner_texts()
        assert first[:2] == ["INV-0000001", "INV-0000002"] and len(first) == 50
        assert "Klant 2" in await page.inner_text("#invoices tbody tr:first-child")  # the customer column
        await page.click("#next-page")
        await page.wait_for_url("**/console/invoices?cursor=*")
        second = await page.locator("#invoices tbody tr td:first-child").all_inner_texts()
        assert second[0] == "INV-0000051" and len(second) == 50
        await screenshot(page, "console-invoices-second-page")

        await page.fill("#q", "Klant 17")
        await page.select_option("#status", "failed")
        await page.click("form.filters button[type=submit]")
        await page.wait_for_url("**/console/invoices?q=Klant+17&status=failed")
        rows = await page.locator("#invoices tbody tr").all_inner_texts()
        assert rows and all("Klant 17" in row and "failed" in row for row in rows), rows
        await screenshot(page, "console-invoices-searched")

        await page.goto(f"{stack.console}/console/mandates?q=KOP0000001")
        await page.click("#mandates tbody tr:first-child a")
        await page.wait_for_url(f"**/console/mandates/{mandate_with_history(stack.tenant)}")
        assert await page.inner_text("#iban") == "BE68539007547034 GKCCBEBB"
        assert await page.inner_text("#max-amount") == "no maximum"
        assert "itsme" in await page.inner_text("#signature-date")
        history = await page.locator("#history tbody tr").all_inner_texts()
        assert [h.split("\t")[1] for h in history] == [
            "mandate.prepared", "mandate.signed", "mandate.suspended", "Twikey asked to suspend", "mandate.resumed",
        ]  # fmt: skip
        assert "debtor asked for a pause" in history[2]
        await screenshot(page, "console-mandate-detail")
