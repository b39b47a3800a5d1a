"""Commands from the other services: collect (exactly once), mandate actions, pay links."""

from __future__ import annotations

import uuid

import pytest

from koppel_shared.debtor import Debtor
from koppel_shared.events import new_event
from koppel_shared.events.commands import CollectItem, CollectRequested, MandateActionRequested, PaylinkRequested
from koppel_shared.service import Runtime
from koppel_shared.testing.service_checks import worker
from sync_svc.bootstrap import definition
from sync_svc.service_layer import commands
from sync_svc.service_layer.resources import Resources
from sync_svc.settings import Settings

from .conftest import Tap, Tenant

pytestmark = pytest.mark.integration


def _collect(tenant: Tenant, *items: CollectItem):
    return new_event(CollectRequested(items=list(items)), tenant_id=tenant.tenant_id)


def _item(number: str, amount_cents: int = 4999) -> CollectItem:
    return CollectItem(
        collection_id=str(uuid.uuid4()),
        mandate_number=number,
        amount_cents=amount_cents,
        message="Invoice 2026-001",
        reference="INV-2026-001",
    )


async def _transactions(tenant: Tenant, number: str) -> list[dict]:
    r = await tenant.control.get("/transactions", params={"api_key": tenant.api_key, "mndt_id": number})
    body = r.json()
    return list(body["items"])


async def test_collect_creates_each_transaction_exactly_once_when_the_answer_is_lost_and_the_command_redelivered(
    tenant: Tenant, runtime: Runtime, resources: Resources, settings: Settings, tap: Tap
) -> None:
    number = await tenant.signed_mandate()
    item = _item(number)
    # Twikey applies the create but the answer never arrives (client timeout): the retry gets 409.
    await tenant.control.post(
        "/faults",
        json={
            "kind": "timeout",
            "path": "/creditor/transaction",
            "method": "POST",
            "after_write": True,
            "delay_seconds": 3,
            "count": 1,
        },
    )
    command = _collect(tenant, item)
    await commands.collect(runtime, resources, command, command_data(command))
    await commands.collect(runtime, resources, command, command_data(command))  # redelivered
    again = _collect(tenant, item)  # the same collection asked for again, new command id
    await commands.collect(runtime, resources, again, command_data(again))

    created = await _transactions(tenant, number)
    assert [t["ref"] for t in created] == [item.collection_id]
    async with worker(definition, settings):
        events = await tap.wait_for("twikey.transaction.created", 1)
    assert len({e["id"] for e in events}) == 1
    assert events[0]["data"]["transaction_id"] == str(created[0]["id"])
    assert events[0]["data"]["amount_cents"] == 4999


def command_data(envelope) -> CollectRequested:
    return CollectRequested.model_validate(envelope.data)


async def test_collect_through_the_broker_reports_created_and_refused(
    tenant: Tenant, runtime: Runtime, settings: Settings, tap: Tap
) -> None:
    number = await tenant.signed_mandate()
    good, unknown = _item(number, 2500), _item("NO-SUCH-MANDATE")
    await tenant.control.post(
        "/faults", json={"kind": "error", "status": 500, "path": "/creditor/transaction", "count": 2}
    )
    async with worker(definition, settings):
        async with runtime.uow() as uow:
            await uow.emit(_collect(tenant, good, unknown))
            await uow.commit()
        created = await tap.wait_for("twikey.transaction.created", 1)
        refused = await tap.wait_for("twikey.transaction.refused", 1)
    assert created[0]["data"]["collection_id"] == good.collection_id
    assert (refused[0]["data"]["collection_id"], refused[0]["data"]["code"]) == (
        unknown.collection_id,
        "err_no_contract",
    )
    assert len(await _transactions(tenant, number)) == 1


async def test_mandate_actions_reach_twikey_and_failures_are_reported(
    tenant: Tenant, runtime: Runtime, resources: Resources, settings: Settings, tap: Tap
) -> None:
    number = await tenant.signed_mandate()
    for action in ("suspend", "resume", "remind", "cancel", "cancel"):
        env = new_event(MandateActionRequested(mandate_number=number, action=action), tenant_id=tenant.tenant_id)
        await commands.mandate_action(runtime, resources, env, MandateActionRequested.model_validate(env.data))
    mandate = (await tenant.control.get(f"/mandates/{number}")).json()
    assert mandate["state"] == "CANCELLED"

    env = new_event(MandateActionRequested(mandate_number="NOPE", action="suspend"), tenant_id=tenant.tenant_id)
    await commands.mandate_action(runtime, resources, env, MandateActionRequested.model_validate(env.data))
    async with worker(definition, settings):
        failed = await tap.wait_for("twikey.command.failed", 1)
    assert (failed[0]["data"]["command"], failed[0]["data"]["code"]) == ("suspend", "err_no_contract")


async def test_paylink_command_creates_one_link_and_answers_its_url(
    tenant: Tenant, runtime: Runtime, resources: Resources, settings: Settings, tap: Tap
) -> None:
    data = PaylinkRequested(
        reference=f"INV-{uuid.uuid4().hex[:8]}",
        amount_cents=1250,
        message="Invoice 7",
        customer=Debtor(name="An Peeters"),
    )
    env = new_event(data, tenant_id=tenant.tenant_id)
    await commands.paylink(runtime, resources, env, data)
    await commands.paylink(runtime, resources, env, data)  # redelivered
    links = (await tenant.control.get("/paylinks", params={"api_key": tenant.api_key})).json()
    items = links["items"]
    assert len([p for p in items if p["ref"] == data.reference]) == 1
    async with worker(definition, settings):
        created = await tap.wait_for("twikey.paylink.created", 1)
    assert created[0]["data"]["reference"] == data.reference
    assert created[0]["data"]["url"].startswith("http")


async def test_a_paylink_leaves_out_customer_details_longer_than_twikey_takes(
    tenant: Tenant, runtime: Runtime, resources: Resources
) -> None:
    # Twikey's description limits pay-link fields (address 70, city 50, e-mail 70, names 50, ...);
    # Koppel keeps longer ones, so they stay home instead of getting the link refused.
    data = PaylinkRequested(
        reference=f"INV-{uuid.uuid4().hex[:8]}",
        amount_cents=990,
        message="Invoice 8",
        customer=Debtor(
            name="Anna-Maria " + "Vandenbroucke-" * 4,
            email="a" * 70 + "@example.be",
            address="Kerkstraat 1, " + "gebouw B " * 8,
            city="Sint-Martens-Latem-aan-de-Leie-" * 2,
            zip="9830",
        ),
    )
    await commands.paylink(runtime, resources, new_event(data, tenant_id=tenant.tenant_id), data)
    items = (await tenant.control.get("/paylinks", params={"api_key": tenant.api_key})).json()["items"]
    [link] = [p for p in items if p["ref"] == data.reference]
    assert link["customer"]["zip"] == "9830" and link["customer"]["firstname"] == "Anna-Maria"
    assert not any(link["customer"].get(k) for k in ("email", "address", "city", "lastname"))


async def test_a_command_twikey_never_answers_is_retried_then_answered_unavailable_on_the_last_try(
    tenant: Tenant, runtime: Runtime, settings: Settings, tap: Tap
) -> None:
    number = await tenant.signed_mandate()
    # Every try fails: each consumer attempt is a few client retries, and there are max_attempts.
    await tenant.control.post(
        "/faults", json={"kind": "error", "status": 500, "path": f"/creditor/mandate/{number}/action", "count": 1000}
    )
    try:
        async with worker(definition, settings):
            async with runtime.uow() as uow:
                remind = MandateActionRequested(mandate_number=number, action="remind")
                await uow.emit(new_event(remind, tenant_id=tenant.tenant_id))
                await uow.commit()
            failed = await tap.wait_for("twikey.command.failed", 1, within=60.0)
    finally:
        await tenant.control.delete("/faults")
    data = failed[0]["data"]
    assert (data["command"], data["mandate_number"], data["code"]) == ("remind", number, "unavailable")
    assert data["message"].startswith(f"Twikey unavailable after {settings.max_attempts} attempts")
