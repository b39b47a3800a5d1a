"""Twinfield's fair-use credits, kept by all workers together (the budget lives in PostgreSQL):
reservations from two engines never overspend, a client's credits are shared by its
organisations, and two tenants in two organisations booking at once stay under the limit the
sandbox enforces (no 429) while every payment is booked once."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bookkeeping_svc.adapters.credits import CreditBudget, Limits
from bookkeeping_svc.settings import Settings
from koppel_shared.testing.waiting import eventually

from .conftest import Sandbox, Service
from .test_bookings import paid

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings(settings: Settings) -> Settings:
    """Twinfield's limits on a 3-second window so the test is quick (the sandbox is set alike).
    A request reaches the sandbox up to a few hundred milliseconds after its credits were
    reserved; on a 3-second window that is a large share, hence more headroom than the 5 % that
    covers it on Twinfield's minute."""
    return settings.model_copy(
        update={
            "twinfield_client_credits_per_minute": 30,
            "twinfield_credits_per_minute": 21,
            "twinfield_credit_window_seconds": 3.0,
            "twinfield_credit_headroom": 0.2,
        }
    )


@pytest.fixture
async def engines(service: Service) -> AsyncIterator[list[AsyncEngine]]:
    made = [create_async_engine(service.settings.database_url, pool_size=12) for _ in range(2)]
    yield made
    for engine in made:
        await engine.dispose()


def budgets(engines: list[AsyncEngine], limits: Limits) -> list[CreditBudget]:
    client = f"client-{uuid.uuid4().hex[:8]}"  # fresh buckets for each test
    return [CreditBudget(engine, client, limits) for engine in engines]


async def test_two_workers_reserving_at_once_queue_up_and_never_overspend(engines: list[AsyncEngine]) -> None:
    # 60 credits a minute, half at once: 30 now, then one every two seconds.
    first, second = budgets(engines, Limits(client=60, organisation=600, burst=0.5))
    waits = await asyncio.gather(*(b.reserve("ORG", 3) for b in [first, second] * 10))
    waits = sorted(waits)
    assert waits[:10] == [0.0] * 10
    # Every later reservation waits for its own credits: 6 s more for each 3 credits.
    assert waits[10:] == pytest.approx([6.0 * n for n in range(1, 11)], abs=0.5)
    assert first.spent + second.spent == 60


async def test_organisations_share_the_client_budget_but_not_each_others(engines: list[AsyncEngine]) -> None:
    budget, _ = budgets(engines, Limits(client=100, organisation=20, burst=0.5))
    assert await budget.reserve("A", 10) == 0.0  # A's own bucket holds 10
    assert await budget.reserve("A", 3) == pytest.approx(3 / (10 / 60), abs=0.5)  # A in debt: 18 s
    assert await budget.reserve("B", 10) == 0.0  # B is another organisation
    # The client's 50 are nearly gone (23 taken); B's next 10 are bounded by B's own bucket.
    assert await budget.reserve("B", 10) == pytest.approx(10 / (10 / 60), abs=0.5)


async def test_refund_and_block(engines: list[AsyncEngine]) -> None:
    budget, other_worker = budgets(engines, Limits(client=600, organisation=60, burst=0.5))
    assert await budget.reserve("A", 30) == 0.0
    await budget.refund("A", 30)  # a 429 is not charged
    assert await other_worker.reserve("A", 30) == 0.0
    await budget.block("A", 20)  # Retry-After: 20 from Twinfield
    assert await other_worker.reserve("A", 1) == pytest.approx(20 + 1 / (30 / 60), abs=0.5)


# Enough payments per organisation for several of the shortened windows (3 s each) and batches.
PER_ORGANISATION = 60


async def test_two_organisations_booking_at_once_stay_under_the_client_limit(
    service: Service, twinfield: Sandbox
) -> None:
    # 30 credits per client, 21 per client + organisation, in 3 seconds; the service keeps to
    # the same numbers (the settings fixture above).
    twinfield.control(
        "PATCH",
        "/config",
        json={"limits": {"window_seconds": 3, "per_client_certified": 30, "per_client_org_certified": 21}},
    )
    settings = service.settings
    tenants = []
    for n in range(2):
        tenant, office = uuid.uuid4(), f"NLB00000{n}"
        organisation = f"ORG-CREDITS-{n}-{uuid.uuid4().hex[:6]}"
        twinfield.control(
            "POST", "/organisations", json={"code": organisation, "name": organisation, "offices": [{"code": office}]}
        )
        twinfield.control(
            "POST",
            f"/offices/{office}/customers",
            json={"customers": [{"code": "1001", "name": "Bakkerij De Korf", "email": "info@dekorf.nl"}]},
        )
        numbers = [f"F{n}-{i:04d}" for i in range(PER_ORGANISATION)]
        twinfield.control(
            "POST",
            f"/offices/{office}/invoices",
            json={"invoices": [{"customer": "1001", "invoice_number": x, "amount_cents": 12100} for x in numbers]},
        )
        token = twinfield.control(
            "POST", "/tokens", json={"client_id": settings.twinfield_client_id, "organisation": organisation}
        )["refresh_token"]
        await connect(service, tenant, office, token)
        tenants.append((tenant, numbers))
    twinfield.control("POST", "/credits/reset")
    await asyncio.gather(*(service.publish(paid(x), t) for t, numbers in tenants for x in numbers))

    async def all_matched() -> bool:
        for tenant, numbers in tenants:
            reply = await service.api.get(
                "/v1/bookings", params={"status": "booked", "limit": 500}, headers=service.headers(tenant)
            )
            items = reply.json()["items"]
            if len(items) != len(numbers) or {b["status"] for b in items} != {"matched"}:
                return False
        return True

    await eventually(all_matched, within=90)
    spent = twinfield.control("GET", "/credits")["clients"][settings.twinfield_client_id]
    assert spent["rejected_429"] == 0
    # One look-up per payment (browse 100 filters one invoice number per request: Twinfield shows
    # no operator that lists several), and in full batches of 25 one post and one match per batch
    # (6 credits); one write per payment would have cost 7 credits each.
    payments, batches = 2 * PER_ORGANISATION, 2 * math.ceil(PER_ORGANISATION / 25)
    assert spent["credits"] <= payments + batches * 6


async def connect(service: Service, tenant: uuid.UUID, office: str, refresh_token: str) -> None:
    reply = await service.api.put("/v1/twinfield/connection", json={"office": office}, headers=service.headers(tenant))
    assert reply.status_code == 200, reply.text
    reply = await service.api.post(
        "/v1/twinfield/connection/refresh-token",
        json={"refresh_token": refresh_token},
        headers=service.headers(tenant),
    )
    assert reply.status_code == 200, reply.text
