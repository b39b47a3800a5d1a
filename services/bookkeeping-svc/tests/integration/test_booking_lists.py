"""The bookings list as the console pages it (search, cursor past rows created together, a
refused foreign cursor) and the figures of the overview, on rows written straight to the table."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bookkeeping_svc.adapters.orm import bookings

from .conftest import Service

pytestmark = pytest.mark.integration


async def insert(service: Service, rows: list[dict[str, Any]]) -> None:
    engine = create_async_engine(service.settings.database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(bookings), rows)
    finally:
        await engine.dispose()


def row(tenant: uuid.UUID, n: int, **values: Any) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "tenant_id": tenant,
        "collection_id": f"col-{uuid.uuid4()}",
        "payment_kind": "transaction",
        "twikey_id": f"{n}{uuid.uuid4().int % 10**8}",
        "reference": f"TX{n}",
        "invoice_number": f"INV-{n}",
        "customer_number": f"C-{n}",
        "customer_name": f"Klant {n}",
        "amount_cents": 1000 + n,
        "method": "direct_debit",
        "paid_on": datetime.now(UTC).date(),
        "status": "open",
        "created_at": datetime.now(UTC),
        "booked_at": None,
        **values,
    }


async def test_cursor_pages_through_bookings_created_in_one_transaction_each_once(service: Service) -> None:
    tenant = uuid.uuid4()
    at = datetime.now(UTC)
    made = [row(tenant, n, created_at=at) for n in range(5)]  # one instant: `before` alone would lose rows
    await insert(service, made)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        reply = await service.api.get("/v1/bookings", params=params, headers=service.headers(tenant))
        assert reply.status_code == 200, reply.text
        seen += [b["id"] for b in reply.json()["items"]]
        if not reply.json()["next_cursor"]:
            break
        params["cursor"] = reply.json()["next_cursor"]
    assert sorted(seen) == sorted(str(r["id"]) for r in made) and len(seen) == 5


@pytest.mark.parametrize(
    "cursor",
    ["garbage", base64.urlsafe_b64encode(b"invoice|2026-01-01T00:00:00+00:00|x").decode(), "Ym9va2luZ3x4fHk="],
)
async def test_a_cursor_this_list_did_not_return_is_a_400(service: Service, cursor: str) -> None:
    reply = await service.api.get("/v1/bookings", params={"cursor": cursor}, headers=service.headers(uuid.uuid4()))
    assert reply.status_code == 400 and reply.json()["code"] == "invalid_cursor"


async def test_search_by_invoice_customer_twikey_id_or_name_within_the_tab(service: Service) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    wanted = row(tenant, 1, status="error", customer_name="Els Wouters")
    await insert(service, [wanted, row(tenant, 2, status="error"), row(other, 1, status="error")])

    async def ids(**params: Any) -> list[str]:
        reply = await service.api.get("/v1/bookings", params=params, headers=service.headers(tenant))
        assert reply.status_code == 200, reply.text
        return [b["id"] for b in reply.json()["items"]]

    for q in ("INV-1", "C-1", wanted["twikey_id"], "wouters"):
        assert await ids(q=q, status="error") == [str(wanted["id"])], q
    assert await ids(q="INV-1", status="booked") == []
    assert await ids(q="_") == []  # a LIKE wildcard is taken literally


async def test_stats_count_by_status_and_tab_and_give_latency_percentiles_per_day(service: Service) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    old = now - timedelta(days=3)
    booked = [
        row(tenant, n, status="matched", created_at=now - timedelta(seconds=10 * n + 10), booked_at=now)
        for n in range(3)
    ]  # 10 s, 20 s and 30 s from received to booked
    await insert(
        service,
        [*booked, row(tenant, 7, status="error", created_at=old), row(tenant, 8), row(other, 9, status="error")],
    )
    reply = await service.api.get("/v1/bookings/stats", params={"days": 3}, headers=service.headers(tenant))
    assert reply.status_code == 200, reply.text
    stats = reply.json()
    assert stats["by_status"] == {"matched": 3, "error": 1, "open": 1}
    assert stats["by_tab"]["booked"]["count"] == 3 and stats["by_tab"]["open"]["count"] == 1
    assert datetime.fromisoformat(stats["by_tab"]["error"]["oldest_created_at"]) == old
    today = stats["per_day"][-1]
    assert len(stats["per_day"]) == 3 and today["day"] == now.date().isoformat()
    assert (today["booked"], today["booked_cents"]) == (3, 3003)
    assert today["latency_p50_seconds"] == pytest.approx(20)
    assert 20 < today["latency_p90_seconds"] <= 30
    assert stats["per_day"][0]["booked"] == 0 and stats["per_day"][0]["latency_p50_seconds"] is None
