"""Through the real sync-svc and the Twikey sandbox: the ERP prepares mandates at mandate-svc,
which has sync-svc invite them at the sandbox; the debtor (and the debtor's bank) act in the
sandbox; its webhooks reach sync-svc over HTTP, sync-svc drains the feed and publishes
``twikey.mandate.changed``; mandate-svc moves the mandates. Ends with a feed reset that replays
everything and must leave every mandate exactly as it was.

sync-svc's API runs under uvicorn on a free port (the sandbox posts webhooks to it), its worker
and mandate-svc's worker in-process; both share the test exchange, each has its own database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from koppel_shared.auth import issue_token, verify_token
from koppel_shared.events import Envelope
from koppel_shared.messaging.broker import Broker
from koppel_shared.migrations import drop_database, ensure_database, migrate
from koppel_shared.service import build_api
from koppel_shared.testing.fixtures import AMQP_URL, PG_BASE, TEST_SIGNING_KEY, settings_for_test, unique_name
from koppel_shared.testing.service_checks import api_client, worker
from koppel_shared.testing.serving import Served, free_port
from koppel_shared.testing.waiting import eventually
from mandate_svc.bootstrap import definition as mandate_definition
from mandate_svc.settings import Settings as MandateSettings

sync_bootstrap = pytest.importorskip("sync_svc.bootstrap")
sync_testing = pytest.importorskip("sync_svc.testing")
twikey_sandbox = pytest.importorskip("twikey_sandbox")
twikey_testing = pytest.importorskip("twikey_sandbox.testing")

if TYPE_CHECKING:
    from conftest import Tap

pytestmark = pytest.mark.integration


@dataclass
class World:
    erp: httpx.AsyncClient  # mandate-svc with the tenant's ERP token
    operator: httpx.AsyncClient  # sync-svc with the tenant's operator token
    control: httpx.AsyncClient  # the sandbox's /_sandbox
    tenant_id: str
    exchange: str
    database_url: str  # mandate-svc's
    creditor: dict[str, Any]  # the sandbox creditor of the tenant (api_key, templates)
    twikey_base: str  # the sandbox's Twikey API (…/creditor)
    mandate_operator: dict[str, str]  # headers with the tenant's operator token, for mandate-svc


@pytest.fixture(scope="module")
async def sync_database_url() -> AsyncIterator[str]:
    url = f"{PG_BASE}/{unique_name('db')}"
    await ensure_database(url)
    yield url
    await drop_database(url)


@pytest.fixture(scope="module")
async def world(
    database_url: str, sync_database_url: str, broker_prefix: str, cleanup_exchange: None, tap: Tap
) -> AsyncIterator[World]:
    sync_definition = sync_bootstrap.definition
    sync_port = free_port()
    sync_settings = sync_testing.sync_settings_for_test(
        sync_database_url, broker_prefix, sync_port, twikey_timeout_seconds=5.0
    )
    mandate_settings = settings_for_test(
        MandateSettings, database_url, broker_prefix, sync_url=f"http://127.0.0.1:{sync_port}"
    )
    # mandate-svc's service token must verify at sync-svc, which holds public keys only.
    assert "token_signing_key" not in type(mandate_settings).model_fields
    assert verify_token(
        sync_settings.public_keys, mandate_settings.sync_token.get_secret_value(), acting_for=uuid.uuid4()
    ).has("internal")
    await migrate(sync_definition.migrations_dir, sync_settings.database_url)
    await migrate(mandate_definition.migrations_dir, mandate_settings.database_url)

    tenant_id = str(uuid.uuid4())
    secret = TEST_SIGNING_KEY
    erp_token = issue_token(secret, tenant_id, ["erp"], ttl=timedelta(hours=1))
    operator_token = issue_token(secret, tenant_id, ["operator"], ttl=timedelta(hours=1))

    with (
        Served(twikey_sandbox.create_app(fault_seed=11)) as sandbox,
        Served(build_api(sync_definition, sync_settings), sync_port) as sync_api,
    ):
        async with (
            worker(sync_definition, sync_settings),
            worker(mandate_definition, mandate_settings),
            api_client(mandate_definition, mandate_settings) as erp,
            httpx.AsyncClient(
                base_url=sync_api.base, headers={"Authorization": f"Bearer {operator_token}"}, timeout=30
            ) as operator,
            httpx.AsyncClient(base_url=f"{sandbox.base}/_sandbox", timeout=60) as control,
        ):
            made = (
                await control.post("/creditors", json={"webhook_url": f"{sync_api.base}/webhooks/twikey/{tenant_id}"})
            ).json()
            r = await operator.put(
                "/v1/twikey/connection",
                json=twikey_testing.koppel_connection(made, sandbox.base),
            )
            assert r.status_code == 200, r.text
            erp.headers["Authorization"] = f"Bearer {erp_token}"
            yield World(
                erp=erp,
                operator=operator,
                control=control,
                tenant_id=tenant_id,
                exchange=mandate_settings.exchange,
                database_url=database_url,
                creditor=made,
                twikey_base=f"{sandbox.base}/creditor",
                mandate_operator={"Authorization": f"Bearer {operator_token}"},
            )


async def prepare(w: World, delivery: str = "email", scheme: str = "CORE", **customer: Any) -> dict[str, Any]:
    c = {"number": f"C-{uuid.uuid4().hex[:8]}", "name": "An Peeters", "email": "an@example.be", **customer}
    r = await w.erp.post("/v1/mandates", json={"customer": c, "scheme": scheme, "delivery": delivery})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def becomes(w: World, mandate_id: str, **expected: Any) -> dict[str, Any]:
    latest: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal latest
        latest = (await w.erp.get(f"/v1/mandates/{mandate_id}")).json()
        return all(latest.get(k) == v for k, v in expected.items())

    try:
        await eventually(check, within=30, every=0.2)
    except AssertionError:
        raise AssertionError(f"mandate never reached {expected}; last seen {latest}") from None
    return latest


async def test_prepare_by_email_sms_and_link_through_sync_svc_and_the_sandbox(world: World) -> None:
    by_email = await prepare(world, "email")
    by_sms = await prepare(world, "sms", mobile="+32470123456", iban="BE68539007547034", bic="GKCCBEBB")
    by_link = await prepare(world, "link", email=None)
    for m in (by_email, by_sms, by_link):
        assert m["status"] == "prepared"
        sandbox = (await world.control.get(f"/mandates/{m['mandate_number']}")).json()
        assert sandbox["state"] == "PREPARED", sandbox
        assert m["sign_url"]


async def test_twikey_down_is_a_503_and_a_retry_with_the_same_key_completes_the_same_mandate(world: World) -> None:
    fault = (await world.control.post("/faults", json={"kind": "error", "path": "invite", "status": 500})).json()
    body = {
        "customer": {"number": f"C-{uuid.uuid4().hex[:8]}", "name": "An", "email": "an@example.be"},
        "delivery": "email",
    }
    key = {"Idempotency-Key": str(uuid.uuid4())}
    try:
        down = await world.erp.post("/v1/mandates", json=body, headers=key)
        assert down.status_code == 503, down.text
        assert down.json()["code"] == "twikey_unavailable"
        mandate_id = down.json()["mandate_id"]
        assert (await world.erp.get(f"/v1/mandates/{mandate_id}")).json()["status"] == "requested"
    finally:
        await world.control.delete("/faults")
    assert fault
    up = await world.erp.post("/v1/mandates", json=body, headers=key)
    assert up.status_code == 201, up.text
    assert up.json()["id"] == mandate_id
    assert up.json()["status"] == "prepared"


async def test_debtor_signs_and_the_mandate_is_active_with_bank_data(world: World, tap: Tap) -> None:
    m = await prepare(world)
    r = await world.control.post(
        f"/mandates/{m['mandate_number']}/sign",
        json={"iban": "BE68539007547034", "bic": "GKCCBEBB", "method": "itsme", "place": "Gent"},
    )
    assert r.status_code == 200, r.text
    got = await becomes(world, m["id"], status="active")
    assert got["iban"] == "BE68539007547034"
    assert got["bic"] == "GKCCBEBB"
    assert got["signature_date"] is not None
    assert got["sign_method"] == "itsme"
    assert got["sign_place"] == "Gent"
    signed = await tap.wait_for("mandate.signed", mandate_id=m["id"])
    assert signed.data["iban"] == "BE68539007547034"

    await world.control.post(f"/mandates/{m['mandate_number']}/max-amount", json={"max_amount": 150})
    got = await becomes(world, m["id"], max_amount_cents=15_000)
    view = (await world.erp.get(f"/v1/customers/{m['customer']['number']}/mandates")).json()
    assert view["collectable"] is True
    assert view["max_amount_cents"] == 15_000


async def test_b2b_accepted_and_rejected_by_the_bank(world: World) -> None:
    ok = await prepare(world, scheme="B2B", company_name="Janssens BV")
    ko = await prepare(world, scheme="B2B", company_name="Peeters BV")
    for m, iban in ((ok, "BE16645348971174"), (ko, "BE49473211985171")):
        r = await world.control.post(f"/mandates/{m['mandate_number']}/sign", json={"iban": iban, "bic": "JVBABE22"})
        assert r.status_code == 200, r.text
    await world.control.post(f"/mandates/{ok['mandate_number']}/bank/accept")
    await world.control.post(f"/mandates/{ko['mandate_number']}/bank/reject", json={"reason": "Rejected by bank"})
    accepted = await becomes(world, ok["id"], status="active")
    assert accepted["iban"] == "BE16645348971174"
    rejected = await becomes(world, ko["id"], status="rejected")
    assert rejected["collectable"] is False


async def test_suspend_resume_and_cancel_reach_twikey_and_come_back_through_the_feed(world: World) -> None:
    m = await prepare(world)
    number = m["mandate_number"]
    await world.control.post(f"/mandates/{number}/sign", json={"iban": "BE68539007547034", "bic": "GKCCBEBB"})
    await becomes(world, m["id"], status="active")

    r = await world.erp.post(f"/v1/mandates/{m['id']}/suspend")
    assert r.json()["status"] == "suspended"
    await becomes(world, m["id"], status="suspended", pending_action=None)  # confirmed by Twikey's feed
    assert (await world.control.get(f"/mandates/{number}")).json()["state"] == "SUSPENDED"

    await world.erp.post(f"/v1/mandates/{m['id']}/resume")
    await becomes(world, m["id"], status="active", pending_action=None)

    r = await world.erp.delete(f"/v1/mandates/{m['id']}", params={"reason": "contract ended"})
    assert r.json()["status"] == "cancelled"
    await becomes(world, m["id"], status="cancelled", pending_action=None)
    assert (await world.control.get(f"/mandates/{number}")).json()["state"] == "CANCELLED"


async def test_delete_a_prepared_mandate_removes_it_at_twikey(world: World) -> None:
    m = await prepare(world)
    r = await world.erp.delete(f"/v1/mandates/{m['id']}")
    assert r.json()["status"] == "cancelled"

    async def gone() -> bool:
        return (await world.control.get(f"/mandates/{m['mandate_number']}")).status_code == 404

    await eventually(gone, within=30, every=0.2)


async def test_feed_reset_replays_everything_and_leaves_every_mandate_as_before(world: World, tap: Tap) -> None:
    # Mandates signed directly at Twikey exist too: the replay must not duplicate them either.
    seeded = await world.control.post("/seed", json={"api_key": None, "mandates": 2})
    assert seeded.status_code in (200, 201), seeded.text

    async def snapshot() -> list[dict[str, Any]]:
        return list((await world.erp.get("/v1/mandates", params={"limit": 200})).json()["items"])

    # Let the current state settle: nothing changes between two looks a moment apart.
    previous: list[dict[str, Any]] = []

    async def stable() -> bool:
        nonlocal previous
        now = await snapshot()
        same = now == previous and bool(now)
        previous = now
        return same

    await eventually(stable, within=30, every=1.0)
    before = previous
    events_before = len([e for e in tap.received if e.type.startswith("mandate.")])

    changes_before = tap.of("twikey.mandate.changed")
    assert changes_before

    async def mandate_feed() -> dict[str, Any]:
        feeds = (await world.operator.get("/v1/twikey/feeds")).json()["feeds"]
        return next(f for f in feeds if f["feed"] == "mandate")

    feed_before = await mandate_feed()
    r = await world.operator.post("/v1/twikey/feeds/reset", json={"feed": "mandate"})
    assert r.status_code == 200, r.text

    async def redrained() -> bool:  # sync-svc read the whole mandate feed again from the start
        now = await mandate_feed()
        return bool(now["cursor"] == feed_before["cursor"] and now["messages_total"] > feed_before["messages_total"])

    await eventually(redrained, within=30, every=0.2)
    # sync-svc's outbox drops the replayed events (same ids); had its outbox been pruned they would
    # reach us again: deliver them, with the same ids and with new ones, as the worst case.
    fresh = [Envelope(**{**env.model_dump(), "id": uuid.uuid4()}) for env in changes_before]
    broker = Broker(AMQP_URL, world.exchange)
    await broker.connect()
    try:
        for env, copy in zip(changes_before, fresh, strict=True):
            await broker.publish(env)
            await broker.publish(copy)
    finally:
        await broker.close()
    engine = create_async_engine(world.database_url)
    try:

        async def handled() -> bool:
            async with engine.connect() as conn:
                ids = [e.id for e in fresh]
                done = await conn.scalar(sa.text("SELECT count(*) FROM inbox WHERE event_id = ANY(:ids)"), {"ids": ids})
                return done == len(fresh)

        await eventually(handled, within=30, every=0.2)
    finally:
        await engine.dispose()
    previous = []
    await eventually(stable, within=30, every=1.0)

    assert previous == before
    assert len([e for e in tap.received if e.type.startswith("mandate.")]) == events_before


# --- one mandate per ERP request, whatever the concurrency and retries ----------------------------


async def twikey_mandates_of(w: World, customer_number: str) -> list[dict[str, Any]]:
    """The sandbox's own records: every mandate Twikey holds for this customer (each one an invite)."""
    listed = (await w.control.get("/mandates", params={"api_key": w.creditor["api_key"], "limit": 10_000})).json()
    return [m for m in listed["items"] if m["customer_number"] == customer_number]


@pytest.mark.parametrize("concurrency", [2, 10])
async def test_concurrent_requests_with_one_idempotency_key_make_one_mandate_at_twikey(
    world: World, tap: Tap, concurrency: int
) -> None:
    number = f"C-{uuid.uuid4().hex[:8]}"
    body = {"customer": {"number": number, "name": "An Peeters", "email": "an@example.be"}, "delivery": "email"}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    answers = await asyncio.gather(
        *(world.erp.post("/v1/mandates", json=body, headers=key) for _ in range(concurrency))
    )
    assert sorted(a.status_code for a in answers) == [200] * (concurrency - 1) + [201], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert len({a.json()["mandate_number"] for a in answers}) == 1
    assert {a.json()["status"] for a in answers} == {"prepared"}
    at_twikey = await twikey_mandates_of(world, number)
    assert [m["mndt_id"] for m in at_twikey] == [answers[0].json()["mandate_number"]]
    prepared = await tap.wait_for("mandate.prepared", mandate_id=answers[0].json()["id"])
    await asyncio.sleep(0.5)  # any second event would have arrived by now
    assert tap.of("mandate.prepared", mandate_id=prepared.data["mandate_id"]) == [prepared]


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "timeout", "after_write": True, "delay_seconds": 7},  # sync-svc's Twikey timeout is 5 s
        {"kind": "error", "status": 500, "after_write": True},
    ],
    ids=["timeout", "500"],
)
async def test_invite_answer_lost_after_twikey_made_the_mandate_makes_no_second_one(
    world: World, fault: dict[str, Any]
) -> None:
    number = f"C-{uuid.uuid4().hex[:8]}"
    body = {"customer": {"number": number, "name": "An Peeters", "email": "an@example.be"}, "delivery": "email"}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    await world.control.post("/faults", json={**fault, "path": "invite", "method": "POST", "count": 1})
    try:
        first = await world.erp.post("/v1/mandates", json=body, headers=key)
    finally:
        await world.control.delete("/faults")
    at_twikey = await twikey_mandates_of(world, number)
    assert len(at_twikey) == 1, at_twikey
    assert first.status_code == 201, first.text
    got = first.json()
    assert got["status"] == "prepared"
    assert got["mandate_number"] == at_twikey[0]["mndt_id"]

    again = await world.erp.post("/v1/mandates", json=body, headers=key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == got["id"]
    assert len(await twikey_mandates_of(world, number)) == 1


# --- a mandate Koppel did not create --------------------------------------------------------------


async def made_directly_at_twikey(w: World, customer_number: str) -> str:
    """A mandate invited at Twikey by someone else than Koppel (the dashboard, another tool)."""
    async with httpx.AsyncClient(base_url=w.twikey_base) as twikey:
        login = await twikey.post("", data={"apiToken": w.creditor["api_key"]})
        token = login.headers["Authorization"]
        invited = await twikey.post(
            "/invite",
            data={
                "ct": str(w.creditor["templates"]["CORE"]),
                "email": "x@example.be",
                "customerNumber": customer_number,
            },
            headers={"Authorization": token},
        )
        assert invited.status_code == 200, invited.text
        return str(invited.json()["mndtId"])


async def unclaimed(w: World, status: str = "open") -> list[dict[str, Any]]:
    r = await w.erp.get("/v1/unclaimed-mandates", params={"status": status}, headers=w.mandate_operator)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


async def signed_and_listed(w: World, number: str) -> dict[str, Any]:
    r = await w.control.post(f"/mandates/{number}/sign", json={"iban": "BE68539007547034", "bic": "GKCCBEBB"})
    assert r.status_code == 200, r.text

    async def listed() -> bool:
        return any(u["mandate_number"] == number for u in await unclaimed(w))

    await eventually(listed, within=30, every=0.2)
    return next(u for u in await unclaimed(w) if u["mandate_number"] == number)


async def test_a_mandate_signed_at_twikey_that_koppel_never_created_waits_for_the_operator(
    world: World, tap: Tap
) -> None:
    adopted_number = await made_directly_at_twikey(world, "C-STRANGER-1")
    ignored_number = await made_directly_at_twikey(world, "C-STRANGER-2")
    item = await signed_and_listed(world, adopted_number)
    await signed_and_listed(world, ignored_number)
    assert item["customer_number"] == "C-STRANGER-1"
    assert item["iban"] == "BE68539007547034"
    assert item["change"] == "signed"
    for number in (adopted_number, ignored_number):
        assert [
            e for e in tap.received if e.type.startswith("mandate.") and e.data.get("mandate_number") == number
        ] == []
    erp_view = (await world.erp.get("/v1/mandates", params={"customer_number": "C-STRANGER-1"})).json()
    assert erp_view["items"] == []

    r = await world.erp.post(f"/v1/unclaimed-mandates/{adopted_number}/adopt", headers=world.mandate_operator)
    assert r.status_code == 200, r.text
    mandate = r.json()
    assert (mandate["mandate_number"], mandate["status"]) == (adopted_number, "active")
    signed = await tap.wait_for("mandate.signed", mandate_number=adopted_number)
    assert signed.data["mandate_id"] == mandate["id"]

    r = await world.erp.post(f"/v1/unclaimed-mandates/{ignored_number}/ignore", headers=world.mandate_operator)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ignored"
    assert [u["mandate_number"] for u in await unclaimed(world)] == []
    assert {u["mandate_number"] for u in await unclaimed(world, "ignored")} >= {ignored_number}
    await asyncio.sleep(1.0)  # nothing may come for the ignored one
    assert [
        e for e in tap.received if e.type.startswith("mandate.") and e.data.get("mandate_number") == ignored_number
    ] == []

    erp = await world.erp.get("/v1/unclaimed-mandates")
    assert erp.status_code == 403  # the list is the operator's
