"""A collection that is due when it is decided goes to Twikey within seconds: the commit wakes the
scheduler (NOTIFY), it does not wait for the scheduler's next round."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import date

import pytest

from .conftest import Harness, running_harness

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def slow_rounds(database_url: str, broker_prefix: str, cleanup_exchange: None) -> AsyncIterator[Harness]:
    # An hour between rounds: only a wake can submit within the test.
    async with running_harness(database_url, broker_prefix, scheduler_interval_seconds=3600) as running:
        yield running


async def test_an_invoice_due_now_is_handed_to_twikey_at_once_not_at_the_next_round(slow_rounds: Harness) -> None:
    harness, tenant = slow_rounds, uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 12))
    await harness.sign_mandate(tenant, "C-1", "KOP-7", max_amount_cents=100_000)
    started = time.monotonic()
    invoice = await harness.post_invoice(tenant, due_date="2026-02-15", amount_cents=4999)
    assert invoice["collection"]["collect_on"] == "2026-02-12"

    await harness.tap.wait_for("sync.collect_requested", tenant=tenant, within=10)
    assert time.monotonic() - started < 10
    [item] = harness.tap.collect_items(tenant)
    assert item["reference"] == invoice["collection"]["collection_id"]


async def test_an_invoice_due_later_is_not_handed_over_by_the_wake(slow_rounds: Harness) -> None:
    harness, tenant = slow_rounds, uuid.uuid4()
    harness.clock.set_date(date(2026, 2, 1))
    await harness.sign_mandate(tenant, "C-2", "KOP-8", max_amount_cents=100_000)
    invoice = await harness.post_invoice(tenant, customer_number="C-2", due_date="2026-02-15", amount_cents=4999)
    assert invoice["status"] == "scheduled" and invoice["collection"]["collect_on"] == "2026-02-12"
    # Another tenant's due invoice wakes the scheduler; this one is still not due on the clock's day.
    other = uuid.uuid4()
    await harness.sign_mandate(other, "C-3", "KOP-9", max_amount_cents=100_000)
    await harness.post_invoice(other, customer_number="C-3", due_date="2026-02-03", amount_cents=100)
    await harness.tap.wait_for("sync.collect_requested", tenant=other, within=10)
    assert harness.tap.collect_items(tenant) == []
