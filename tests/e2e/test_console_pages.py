"""The console's lists in front of the real service APIs (no browser): the search, filters and
cursors reach the services, every page after the first follows on without repeats, and a cursor
a service did not hand out is the service's clear refusal on the page, changing nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from .console_stack import Stack, running

pytestmark = pytest.mark.integration

INVOICES = 2_000


@pytest.fixture(scope="module")
async def signed_in() -> AsyncIterator[tuple[httpx.AsyncClient, Stack]]:
    async with running(invoices=INVOICES) as stack, httpx.AsyncClient(base_url=stack.console, timeout=60) as client:
        assert (await client.post("/console/login", data={"token": stack.token})).status_code == 303
        yield client, stack


def first_cells(html: str, table: str) -> list[str]:
    body = html.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0]
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<tr[^>]*>\s*<td>(.*?)</td>", body, re.S)]


def next_link(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" id="next-page">', html)
    return found[1].replace("&amp;", "&") if found else None


@pytest.mark.parametrize(
    ("path", "table", "expected"),
    [
        ("/console/invoices", "invoices", INVOICES),
        ("/console/mandates", "mandates", 300),
        ("/console/bookings?tab=booked", "bookings", 1_120),
        ("/console/deliveries", "deliveries", 600),
    ],
)
async def test_every_list_pages_through_all_its_rows_each_once(
    signed_in: tuple[httpx.AsyncClient, Stack], path: str, table: str, expected: int
) -> None:
    client, _ = signed_in
    seen: list[str] = []
    url: str | None = path
    while url:
        page = await client.get(url)
        assert page.status_code == 200 and 'role="alert"' not in page.text, page.text[:500]
        seen += first_cells(page.text, table)
        url = next_link(page.text)
    assert len(seen) == expected
    if table in ("invoices", "bookings"):
        assert len(set(seen)) == expected  # a number each: no row twice


async def test_search_and_filters_reach_the_services(signed_in: tuple[httpx.AsyncClient, Stack]) -> None:
    client, _ = signed_in
    page = await client.get("/console/bookings", params={"tab": "errors", "q": "INV-0000003"})
    assert first_cells(page.text, "bookings") == ["INV-0000003"]
    page = await client.get("/console/invoices", params={"q": "TX1234"})
    assert first_cells(page.text, "invoices") == ["INV-0001234"]
    page = await client.get("/console/invoices", params={"status": "open"})
    assert first_cells(page.text, "invoices")[:2] == ["INV-0000050", "INV-0000100"]
    page = await client.get("/console/mandates", params={"q": "KOP0000008", "status": "active"})
    assert len(first_cells(page.text, "mandates")) == 1 and "KOP0000008" in page.text
    page = await client.get("/console/mandates", params={"q": "KOP0000008", "status": "rejected"})
    assert first_cells(page.text, "mandates") == [] and "Nothing matches." in page.text
    page = await client.get("/console/deliveries", params={"q": "mandate.*", "status": "failed"})
    failed = page.text.split('<table id="deliveries">', 1)[1]
    assert "mandate.signed" in failed and "collection.paid" not in failed and "succeeded" not in failed
    event_id = re.search(r"mandate\.signed <code>([0-9a-f-]{36})</code>", failed)
    assert event_id
    page = await client.get("/console/deliveries", params={"q": event_id[1]})
    assert len(re.findall(r"<code>[0-9a-f-]{36}</code>", page.text.split('<table id="deliveries">', 1)[1])) == 1


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("/console/bookings?cursor=bm9wZQ", "bookkeeping-svc answered 400"),
        ("/console/invoices?cursor=bm9wZQ", "collection-svc answered 422"),
        ("/console/mandates?cursor=bm9wZQ", "mandate-svc answered 422"),
    ],
)
async def test_a_cursor_the_service_did_not_hand_out_is_shown_as_its_refusal(
    signed_in: tuple[httpx.AsyncClient, Stack], path: str, says: str
) -> None:
    client, _ = signed_in
    page = await client.get(path)
    assert page.status_code == 200
    alert = re.search(r'role="alert">([^<]*)<', page.text)
    assert alert and says in alert[1] and "cursor" in alert[1]
