"""Reconciliation against the sandboxes' own records: Twikey (through the real sync-svc, in
process, on its own database) and Twinfield, with bookkeeping-svc's API and worker on the real
PostgreSQL and RabbitMQ. A clean state has no differences; each kind of difference is provoked
for real, reported, fixed, and gone on the next run; the nightly run happens once per tenant
with two workers. Every tenant's creditor has a mandate Koppel published (``mandate.signed``, as
mandate-svc sends it); one signed at Twikey alone is a mandate Koppel does not know."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from bookkeeping_svc.adapters.twinfield import documents
from bookkeeping_svc.bootstrap import definition
from bookkeeping_svc.domain.booking import Accounts, Payment, payment_memo
from bookkeeping_svc.settings import Settings
from koppel_shared.auth import SigningKey, issue_token
from koppel_shared.events.mandate import Mandate, MandatePrepared, MandateSigned
from koppel_shared.migrations import drop_database, ensure_database, migrate
from koppel_shared.service import build_api
from koppel_shared.testing.fixtures import PG_BASE, TEST_SIGNING_KEY, settings_for_test, unique_name
from koppel_shared.testing.service_checks import worker
from koppel_shared.testing.serving import Served, free_port
from koppel_shared.testing.waiting import eventually
from twinfield_sandbox.testing import OFFICE, ORG

from .conftest import Sandbox, Service, paid, wait_status

sync_bootstrap = pytest.importorskip("sync_svc.bootstrap")
sync_testing = pytest.importorskip("sync_svc.testing")
twikey_sandbox = pytest.importorskip("twikey_sandbox")
twikey_testing = pytest.importorskip("twikey_sandbox.testing")

pytestmark = pytest.mark.integration

SYNC_PORT = free_port()


@dataclass
class Twikey:
    """The Twikey sandbox and sync-svc in front of it."""

    base: str
    sync_base: str
    control: httpx.Client
    key: SigningKey

    def connect(self, tenant: uuid.UUID) -> str:
        """A creditor of its own for the tenant, connected in sync-svc; its feeds marked read
        from the start. Returns the creditor's API key."""
        made = self.control.post("/creditors", json={}).json()
        headers = _headers(self.key, tenant, "operator")
        with httpx.Client(base_url=self.sync_base, headers=headers, timeout=30) as sync:
            reply = sync.put("/v1/twikey/connection", json=twikey_testing.koppel_connection(made, self.base))
            assert reply.status_code == 200, reply.text
            reply = sync.post("/v1/twikey/feeds/reset", json={"feed": "all"})
            assert reply.status_code == 200, reply.text
        return str(made["api_key"])

    def signed_mandate(self, api_key: str) -> str:
        """A mandate signed at Twikey itself (as in its dashboard), not through Koppel: its number."""
        seeded = self.control.post("/seed", json={"api_key": api_key, "mandates": 1})
        assert seeded.status_code == 200, seeded.text
        return str(seeded.json()["first_mandate"])

    def paid_transaction(self, api_key: str, amount: str = "121.00") -> str:
        seeded = self.control.post("/seed", json={"api_key": api_key, "transactions": 1, "amount": amount}).json()
        tx = str(seeded["first_transaction"])
        assert self.control.post(f"/transactions/{tx}/paid").status_code == 200
        return tx

    def paid_link(self, api_key: str, amount: str = "121.00") -> str:
        with httpx.Client(base_url=f"{self.base}/creditor", timeout=30) as api:
            token = api.post("", data={"apiToken": api_key}).headers["Authorization"]
            link = api.post(
                "/payment/link", data={"title": "Invoice", "amount": amount}, headers={"Authorization": token}
            )
            assert link.status_code == 200, link.text
        link_id = str(link.json()["id"])
        assert self.control.post(f"/paylinks/{link_id}/pay", json={}).status_code == 200
        return link_id


def _headers(key: SigningKey, tenant: uuid.UUID, scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(key, tenant, [scope])}"}


@pytest.fixture(scope="module")
async def sync_database_url() -> AsyncIterator[str]:
    url = f"{PG_BASE}/{unique_name('db')}"
    await ensure_database(url)
    yield url
    await drop_database(url)


@pytest.fixture(scope="module")
def settings(database_url: str, broker_prefix: str, twinfield: Sandbox) -> Settings:
    return settings_for_test(
        Settings,
        database_url,
        broker_prefix,
        twinfield_login_url=twinfield.base_url,
        twinfield_timeout_seconds=2.0,
        booker_poll_seconds=0.1,
        transient_backoff_seconds=0.1,
        sync_url=f"http://127.0.0.1:{SYNC_PORT}",
        reconcile_poll_seconds=0.1,
        reconcile_nightly=False,
    )


@pytest.fixture(scope="module")
def twikey(sync_database_url: str, broker_prefix: str, settings: Settings) -> Iterator[Twikey]:
    sync_settings = sync_testing.sync_settings_for_test(sync_database_url, broker_prefix, SYNC_PORT)
    asyncio.run(migrate(sync_bootstrap.definition.migrations_dir, sync_database_url))
    with (
        Served(twikey_sandbox.create_app()) as sandbox,
        Served(build_api(sync_bootstrap.definition, sync_settings), SYNC_PORT) as sync_api,
        httpx.Client(base_url=f"{sandbox.base}/_sandbox", timeout=60) as control,
    ):
        yield Twikey(sandbox.base, sync_api.base, control, TEST_SIGNING_KEY)


async def _reconcile(service: Service, tenant: uuid.UUID, expect_open: int | None = None) -> list[dict[str, Any]]:
    """Start a run, follow it to its end, and return its differences."""
    headers = service.headers(tenant)
    reply = await service.api.post("/v1/reconciliation/runs", json={}, headers=headers)
    assert reply.status_code == 202, reply.text
    run_id = reply.json()["id"]
    done: dict[str, Any] = {}

    async def finished() -> bool:
        run = (await service.api.get(f"/v1/reconciliation/runs/{run_id}", headers=headers)).json()
        done.update(run)
        return run["status"] in ("done", "failed")

    await eventually(finished, within=30, every=0.1)
    assert done["status"] == "done", done
    assert done["progress"]["twinfield_credits"] >= 1
    listed = await service.api.get(f"/v1/reconciliation/runs/{run_id}/differences", headers=headers)
    items = list(listed.json()["items"])
    if expect_open is not None:
        assert done["open_differences"] == expect_open, items
    return items


async def _fix(service: Service, tenant: uuid.UUID, difference: dict[str, Any], **body: Any) -> dict[str, Any]:
    reply = await service.api.post(
        f"/v1/reconciliation/differences/{difference['id']}/fix", json=body, headers=service.headers(tenant)
    )
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


async def _booked(service: Service, twinfield: Sandbox, tenant: uuid.UUID, tx: str, kind: str = "transaction") -> None:
    """collection.paid as collection-svc sends it; a transaction's Twikey reference is its collection."""
    number = f"F-{uuid.uuid4().hex[:8]}"
    twinfield.seed_invoice("1001", number, 12100)
    method = "paylink" if kind == "paylink" else "direct_debit"
    collection = f"SEED-{tx}" if kind == "transaction" else str(uuid.uuid4())
    data = paid(number, tx=tx, twikey_id=tx, payment_kind=kind, method=method, collection_id=collection)
    await service.publish(data, tenant)


async def _all_matched(service: Service, tenant: uuid.UUID, count: int) -> None:
    async def check() -> bool:
        items = (await service.bookings(tenant))["items"]
        return len(items) == count and all(i["status"] == "matched" for i in items)

    await eventually(check, within=30, every=0.1)


async def _published(service: Service, tenant: uuid.UUID, number: str, event: type[Mandate] = MandateSigned) -> None:
    """``mandate.signed`` (or another ``mandate.*``) for a Twikey mandate, as mandate-svc publishes
    its own (or one adopted from the unclaimed list), and bookkeeping's record of it. Without a
    bank account: the Twinfield customer is not touched, the mandate is Koppel's all the same."""
    now = datetime.now(UTC)
    data = event(
        mandate_id=str(uuid.uuid4()),
        mandate_number=number,
        customer_number="1001",
        status="active" if event is MandateSigned else "prepared",
        scheme="CORE",
        version=2,
        updated_at=now,
    )
    await service.publish(data, tenant)
    engine = create_async_engine(service.settings.database_url)

    async def recorded() -> bool:
        async with engine.connect() as conn:
            found = await conn.execute(
                sa.text("SELECT 1 FROM koppel_mandates WHERE tenant_id = :t AND mandate_number = :n"),
                {"t": tenant, "n": number},
            )
            return found.first() is not None

    try:
        await eventually(recorded, within=20, every=0.1)
    finally:
        await engine.dispose()


async def _connected(service: Service, twinfield: Sandbox, twikey: Twikey) -> tuple[uuid.UUID, str]:
    """A tenant connected to both sandboxes, with one signed mandate Koppel made (the paid
    transactions are collected on it)."""
    tenant = uuid.uuid4()
    await service.connect(tenant, twinfield)
    key = twikey.connect(tenant)
    await _published(service, tenant, twikey.signed_mandate(key))
    return tenant, key


async def test_a_clean_state_reconciles_to_no_differences(service: Service, twinfield: Sandbox, twikey: Twikey) -> None:
    tenant, key = await _connected(service, twinfield, twikey)
    tx = twikey.paid_transaction(key)
    link = twikey.paid_link(key)
    await _booked(service, twinfield, tenant, tx)
    await _booked(service, twinfield, tenant, link, "paylink")
    await _all_matched(service, tenant, 2)
    assert await _reconcile(service, tenant, expect_open=0) == []


async def test_paid_at_twikey_but_never_booked_is_reported_and_booked_by_its_fix(
    service: Service, twinfield: Sandbox, twikey: Twikey
) -> None:
    tenant, key = await _connected(service, twinfield, twikey)
    tx = twikey.paid_transaction(key)  # bookkeeping never hears of it
    (difference,) = await _reconcile(service, tenant, expect_open=1)
    assert (difference["kind"], difference["fix"], difference["twikey_id"]) == ("paid_not_booked", "book", tx)
    assert difference["twikey"]["amount_cents"] == 12100 and difference["koppel"] is None
    # Twikey's record does not say which invoice was paid: the operator names it.
    refused = await service.api.post(
        f"/v1/reconciliation/differences/{difference['id']}/fix",
        json={"action": "book"},
        headers=service.headers(tenant),
    )
    assert (refused.status_code, refused.json()["code"]) == (422, "invoice_required")
    twinfield.seed_invoice("1001", "F-MISSED-1", 12100)
    fixed = await _fix(service, tenant, difference, action="book", invoice_number="F-MISSED-1", customer_number="1001")
    assert fixed["status"] == "fixed"
    booking = await wait_status(service, tenant, "matched")
    assert booking["invoice_number"] == "F-MISSED-1"
    assert await _reconcile(service, tenant, expect_open=0) == []


async def test_an_extra_memo_in_twinfield_is_booked_twice_and_goes_to_the_errors_list(
    service: Service, twinfield: Sandbox, twikey: Twikey
) -> None:
    tenant, key = await _connected(service, twinfield, twikey)
    tx = twikey.paid_transaction(key)
    await _booked(service, twinfield, tenant, tx)
    await _all_matched(service, tenant, 1)
    booking = await service.booking(tenant)
    assert booking is not None
    _post_memo(twinfield, f"TX{tx}", booking["invoice_number"], 12100)
    (difference,) = await _reconcile(service, tenant, expect_open=1)
    assert (difference["kind"], difference["fix"]) == ("booked_twice", "error")
    assert len(difference["twinfield"]) == 2 and difference["koppel"]["booking_id"] == booking["id"]
    await _fix(service, tenant, difference, action="error")
    failed = await service.booking(tenant, "error")
    assert failed is not None and failed["more_info"]["code"] == "reconciliation"
    (again,) = await _reconcile(service, tenant, expect_open=0)
    assert (again["kind"], again["status"], again["resolution"]) == ("booked_twice", "fixed", "error")


async def test_an_amount_mismatch_is_reported_and_can_be_ignored_with_a_note(
    service: Service, twinfield: Sandbox, twikey: Twikey
) -> None:
    tenant, key = await _connected(service, twinfield, twikey)
    tx = twikey.paid_transaction(key, amount="125.00")  # Twikey collected 125.00, Koppel books 121.00
    await _booked(service, twinfield, tenant, tx)
    await _all_matched(service, tenant, 1)
    (difference,) = await _reconcile(service, tenant, expect_open=1)
    assert difference["kind"] == "amount_mismatch"
    assert (difference["twikey"]["amount_cents"], difference["koppel"]["amount_cents"]) == (12500, 12100)
    refused = await service.api.post(
        f"/v1/reconciliation/differences/{difference['id']}/fix",
        json={"action": "ignore"},
        headers=service.headers(tenant),
    )
    assert (refused.status_code, refused.json()["code"]) == (422, "note_required")
    await _fix(service, tenant, difference, action="ignore", note="4.00 fee settled by hand")
    (again,) = await _reconcile(service, tenant, expect_open=0)
    assert (again["status"], again["note"]) == ("ignored", "4.00 fee settled by hand")


async def test_booked_but_not_paid_at_twikey_is_reported(service: Service, twinfield: Sandbox, twikey: Twikey) -> None:
    tenant, _ = await _connected(service, twinfield, twikey)
    await _booked(service, twinfield, tenant, "990001")  # Twikey has no such transaction
    await _all_matched(service, tenant, 1)
    (difference,) = await _reconcile(service, tenant, expect_open=1)
    assert (difference["kind"], difference["twikey"], difference["fix"]) == ("booked_not_paid", None, "error")
    await _fix(service, tenant, difference, action="error")
    (again,) = await _reconcile(service, tenant, expect_open=0)
    assert again["status"] == "fixed"


async def test_a_memo_matched_to_another_invoice_than_koppel_booked_is_reported(
    service: Service, twinfield: Sandbox, twikey: Twikey
) -> None:
    tenant, key = await _connected(service, twinfield, twikey)
    tx = twikey.paid_transaction(key)
    await _booked(service, twinfield, tenant, tx)
    await _all_matched(service, tenant, 1)
    other = twinfield.seed_invoice("1001", "F-OTHER", 12100)
    # Koppel's record names another (open) sales line than the one Twinfield matched.
    engine = create_async_engine(service.settings.database_url)
    async with engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE bookings SET sales_number = :n WHERE tenant_id = :t"),
            {"n": str(other["number"]), "t": tenant},
        )
    await engine.dispose()
    (difference,) = await _reconcile(service, tenant, expect_open=1)
    assert difference["kind"] == "wrong_invoice_match"
    assert {line["invoice_number"] for line in difference["twinfield"]} >= {"F-OTHER"}


async def test_a_mandate_signed_at_twikey_that_koppel_never_created_is_reported_until_adopted(
    service: Service, twinfield: Sandbox, twikey: Twikey
) -> None:
    tenant, key = await _connected(service, twinfield, twikey)
    assert await _reconcile(service, tenant, expect_open=0) == []  # Koppel's own signed mandate
    stray, old = twikey.signed_mandate(key), twikey.signed_mandate(key)  # signed at Twikey alone
    # Koppel prepared this one; its mandate.signed is still on its way: Koppel knows it all the same.
    await _published(service, tenant, twikey.signed_mandate(key), MandatePrepared)
    found = {d["twikey_id"]: d for d in await _reconcile(service, tenant, expect_open=2)}
    difference = found[stray]
    assert (difference["kind"], difference["fix"]) == ("mandate_unknown", "adopt")
    assert difference["fix_at"] == f"/v1/unclaimed-mandates/{stray}" and difference["fix_at"] in difference["detail"]
    assert difference["twikey"]["state"] == "SIGNED" and difference["twikey"]["customer_number"]
    assert difference["koppel"] is None and difference["booking_id"] is None
    runs = (await service.api.get("/v1/reconciliation/runs", headers=service.headers(tenant))).json()
    assert runs[0]["progress"]["twikey_mandates"] == 4 and runs[0]["progress"]["twikey_signed_mandates"] == 4
    # Bookkeeping does not own mandates: the fix is adopting it in mandate-svc.
    for action in ("error", "book"):
        refused = await service.api.post(
            f"/v1/reconciliation/differences/{difference['id']}/fix",
            json={"action": action},
            headers=service.headers(tenant),
        )
        assert (refused.status_code, refused.json()["code"]) == (409, "fix_in_unclaimed_mandates"), refused.text
    await _fix(service, tenant, found[old], action="ignore", note="test mandate from the dashboard, never used")
    await _published(service, tenant, stray)  # adopted: mandate-svc publishes mandate.signed for it
    (again,) = await _reconcile(service, tenant, expect_open=0)
    assert (again["twikey_id"], again["status"], again["note"]) == (
        old,
        "ignored",
        "test mandate from the dashboard, never used",
    )


def _post_memo(twinfield: Sandbox, reference: str, invoice_number: str, cents: int) -> None:
    """A second MEMO for the same payment, posted straight to the Twinfield sandbox."""
    tokens = twinfield.control("POST", "/tokens", json={"client_id": "koppel-sandbox", "organisation": ORG})
    memo = payment_memo(
        Payment(reference, invoice_number, "1001", None, cents, "direct_debit", datetime.now(UTC).date()),
        "1001",
        Accounts(),
    )
    body = documents.envelope(tokens["access_token"], OFFICE, documents.transactions(OFFICE, [memo]))
    reply = twinfield.http.post(
        f"{tokens['cluster_url']}/webservices/processxml.asmx",
        content=body,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": documents.SOAP_ACTION},
    )
    root = documents.parse_envelope(reply.content)
    assert reply.status_code == 200 and not isinstance(root, documents.Fault) and documents.ok(root), reply.text


async def test_the_nightly_run_happens_once_per_tenant_with_two_workers(
    service: Service, twinfield: Sandbox, twikey: Twikey, settings: Settings
) -> None:
    tenant, _ = await _connected(service, twinfield, twikey)
    nightly = settings.model_copy(update={"reconcile_nightly": True, "reconcile_hour_utc": 0})
    async with worker(definition, nightly), worker(definition, nightly):

        async def ran() -> bool:
            runs = (await service.api.get("/v1/reconciliation/runs", headers=service.headers(tenant))).json()
            return any(r["trigger"] == "nightly" and r["status"] == "done" for r in runs)

        await eventually(ran, within=30, every=0.2)
        await asyncio.sleep(1.0)  # both workers had their turns more than once
    runs = (await service.api.get("/v1/reconciliation/runs", headers=service.headers(tenant))).json()
    assert [r["trigger"] for r in runs] == ["nightly"]
