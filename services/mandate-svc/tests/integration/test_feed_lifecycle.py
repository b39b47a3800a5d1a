"""The mandate lifecycle driven by sync-svc's events: `twikey.mandate.changed` envelopes are
published to the test exchange exactly as sync-svc would (deterministic ids per Twikey message),
the worker consumes them, `mandate.*` events come out (tap queue) and the API shows the state."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from koppel_shared.auth import issue_token
from koppel_shared.debtor import Debtor
from koppel_shared.events import Envelope, new_event
from koppel_shared.events.twikey import TwikeyCommandFailed, TwikeyMandateChanged, twikey_event_uuid
from koppel_shared.testing.fixtures import TEST_SIGNING_KEY
from koppel_shared.testing.waiting import eventually
from mandate_svc.domain.numbers import twikey_number

if TYPE_CHECKING:
    from conftest import FakeSync, Tap, TenantCtx
    from mandate_svc.settings import Settings

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
_seq = iter(range(1000, 10**6))


class Feed:
    """Plays sync-svc: turns Twikey feed messages into envelopes and publishes them."""

    def __init__(self, publish: Callable[[Envelope], Any], tenant_id: str) -> None:
        self.publish = publish
        self.tenant_id = tenant_id
        self.sent: list[Envelope] = []

    def envelope(self, number: str, change: str, seq: int | None = None, **fields: Any) -> Envelope:
        seq = seq if seq is not None else next(_seq)
        data = TwikeyMandateChanged(
            twikey_event_id=f"mandate/{seq}",
            feed_seq=seq,
            event_time=fields.pop("event_time", T0 + timedelta(seconds=seq)),
            mandate_number=number,
            change=change,  # type: ignore[arg-type]
            **fields,
        )
        return new_event(data, tenant_id=self.tenant_id, id=twikey_event_uuid(self.tenant_id, data.twikey_event_id))

    async def send(self, number: str, change: str, seq: int | None = None, **fields: Any) -> Envelope:
        env = self.envelope(number, change, seq, **fields)
        await self.publish(env)
        self.sent.append(env)
        return env


SIGNED: dict[str, Any] = {
    "scheme": "CORE",
    "state": "SIGNED",
    "iban": "BE16645348971174",
    "bic": "GKCCBEBB",
    "max_amount_cents": 25_000,
    "signature_date": date(2026, 1, 5),
    "sign_method": "itsme",
    "sign_place": "Gent",
    "signer": "An Peeters",
}


@pytest.fixture
def feed(publisher: Callable[[Envelope], Any], tenant: TenantCtx) -> Feed:
    return Feed(publisher, tenant.id)


async def prepare(client: httpx.AsyncClient, t: TenantCtx, scheme: str = "CORE") -> dict[str, Any]:
    customer: dict[str, Any] = {"number": f"C-{uuid.uuid4().hex[:8]}", "name": "An Peeters", "email": "an@example.be"}
    if scheme == "B2B":
        customer["company_name"] = "Janssens BV"
    r = await client.post(
        "/v1/mandates", json={"customer": customer, "scheme": scheme, "delivery": "email"}, headers=t.headers
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def state_becomes(client: httpx.AsyncClient, t: TenantCtx, mandate_id: str, **expected: Any) -> dict[str, Any]:
    latest: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal latest
        latest = (await client.get(f"/v1/mandates/{mandate_id}", headers=t.headers)).json()
        return all(latest.get(k) == v for k, v in expected.items())

    try:
        await eventually(check, within=20)
    except AssertionError:
        raise AssertionError(f"mandate never reached {expected}; last seen {latest}") from None
    return latest


async def test_signing_activates_the_mandate_with_bank_data_and_publishes_signed(
    service: httpx.AsyncClient, tenant: TenantCtx, feed: Feed, tap: Tap
) -> None:
    m = await prepare(service, tenant)
    await feed.send(m["mandate_number"], "signed", **SIGNED)

    got = await state_becomes(service, tenant, m["id"], status="active")
    assert got["iban"] == "BE16645348971174"
    assert got["bic"] == "GKCCBEBB"
    assert got["signature_date"] == "2026-01-05"
    assert (got["sign_method"], got["sign_place"], got["signer"]) == ("itsme", "Gent", "An Peeters")
    assert got["max_amount_cents"] == 25_000
    assert got["collectable"] is True

    event = await tap.wait_for("mandate.signed", mandate_id=m["id"])
    assert event.data["version"] == 2
    assert event.data["iban"] == "BE16645348971174"
    assert event.data["mandate_number"] == m["mandate_number"]
    assert event.data["status"] == "active"

    view = (await service.get(f"/v1/customers/{m['customer']['number']}/mandates", headers=tenant.headers)).json()
    assert view["collectable"] is True
    assert view["mandate"]["id"] == m["id"]
    assert view["max_amount_cents"] == 25_000


async def test_b2b_mandate_accepted_by_the_bank(
    service: httpx.AsyncClient, tenant: TenantCtx, feed: Feed, tap: Tap
) -> None:
    m = await prepare(service, tenant, "B2B")
    await feed.send(m["mandate_number"], "signed", scheme="B2B", state="SIGNED_PENDING_DEBTOR_BANK")
    pending = await state_becomes(service, tenant, m["id"], status="pending_bank")
    assert pending["collectable"] is False
    await feed.send(m["mandate_number"], "signed", **{**SIGNED, "scheme": "B2B"})
    await state_becomes(service, tenant, m["id"], status="active")
    signed = await tap.wait_for("mandate.signed", mandate_id=m["id"])
    assert signed.data["scheme"] == "B2B"


async def test_b2b_mandate_rejected_by_the_bank(
    service: httpx.AsyncClient, tenant: TenantCtx, feed: Feed, tap: Tap
) -> None:
    m = await prepare(service, tenant, "B2B")
    await feed.send(m["mandate_number"], "cancelled", reason="Rejected by debtor bank")
    got = await state_becomes(service, tenant, m["id"], status="rejected")
    assert got["reason"] == "Rejected by debtor bank"
    await tap.wait_for("mandate.rejected", mandate_id=m["id"])


async def test_suspend_resume_and_cancel_through_the_api_and_the_feed(
    service: httpx.AsyncClient, tenant: TenantCtx, feed: Feed, tap: Tap
) -> None:
    m = await prepare(service, tenant)
    number = m["mandate_number"]
    await feed.send(number, "signed", **SIGNED)
    await state_becomes(service, tenant, m["id"], status="active")

    r = await service.post(f"/v1/mandates/{m['id']}/suspend", json={"reason": "holiday"}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["pending_action"]) == ("suspended", "suspend")
    await tap.wait_for("sync.mandate_action_requested", mandate_number=number, action="suspend")
    await tap.wait_for("mandate.suspended", mandate_id=m["id"])
    await feed.send(number, "updated", suspended=True)
    await state_becomes(service, tenant, m["id"], status="suspended", pending_action=None)

    r = await service.post(f"/v1/mandates/{m['id']}/resume", headers=tenant.headers)
    assert r.json()["status"] == "active"
    await tap.wait_for("sync.mandate_action_requested", mandate_number=number, action="resume")
    await tap.wait_for("mandate.resumed", mandate_id=m["id"])
    await feed.send(number, "updated", suspended=False)
    await state_becomes(service, tenant, m["id"], status="active", pending_action=None)

    no_reason = await service.delete(f"/v1/mandates/{m['id']}", headers=tenant.headers)
    assert no_reason.status_code == 422
    assert no_reason.json()["errors"][0] == {
        "field": "reason",
        "rule": "required_for_signed_mandate",
        "message": "a signed mandate is cancelled with a reason",
    }
    r = await service.delete(f"/v1/mandates/{m['id']}", params={"reason": "contract ended"}, headers=tenant.headers)
    assert r.json()["status"] == "cancelled"
    command = await tap.wait_for("sync.mandate_action_requested", mandate_number=number, action="cancel")
    assert command.data["reason"] == "contract ended"
    await tap.wait_for("mandate.cancelled", mandate_id=m["id"])
    await feed.send(number, "cancelled", reason="contract ended")
    got = await state_becomes(service, tenant, m["id"], status="cancelled", pending_action=None)
    # The API shows the state as soon as it commits; its event reaches the tap a moment later.
    await tap.wait_for("mandate.updated", mandate_id=m["id"], version=got["version"])
    versions = [
        e.data["version"] for e in tap.received if e.type.startswith("mandate.") and e.data["mandate_id"] == m["id"]
    ]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert got["version"] == versions[-1]


async def test_command_refused_by_twikey_reverts_and_shows_why(
    service: httpx.AsyncClient, tenant: TenantCtx, feed: Feed, tap: Tap, publisher: Callable[[Envelope], Any]
) -> None:
    m = await prepare(service, tenant)
    await feed.send(m["mandate_number"], "signed", **SIGNED)
    await state_becomes(service, tenant, m["id"], status="active")
    await service.post(f"/v1/mandates/{m['id']}/suspend", headers=tenant.headers)
    failed = TwikeyCommandFailed(
        command="suspend", mandate_number=m["mandate_number"], code="err_no_contract", message="No such mandate"
    )
    await publisher(new_event(failed, tenant_id=tenant.id))
    got = await state_becomes(service, tenant, m["id"], status="active", pending_action=None)
    assert got["last_command_error"]["code"] == "err_no_contract"
    assert "suspend failed" in got["reason"]


def operator_headers(settings: Settings, t: TenantCtx) -> dict[str, str]:
    token = issue_token(TEST_SIGNING_KEY, t.id, ["operator"], issuer=settings.jwt_issuer)
    return {"Authorization": f"Bearer {token}"}


async def on_unclaimed_list(
    client: httpx.AsyncClient, headers: dict[str, str], number: str, messages: int = 1
) -> dict[str, Any]:
    """The unclaimed entry once it holds ``messages`` feed messages (they are applied one by one)."""

    async def listed() -> bool:
        items = (await client.get("/v1/unclaimed-mandates", headers=headers)).json()["items"]
        return any(u["mandate_number"] == number and u["messages"] >= messages for u in items)

    await eventually(listed, within=20)
    items = (await client.get("/v1/unclaimed-mandates", headers=headers)).json()["items"]
    return dict(next(u for u in items if u["mandate_number"] == number))


async def test_mandate_signed_directly_at_twikey_waits_for_the_operator_and_is_created_on_adoption(
    service: httpx.AsyncClient, tenant: TenantCtx, feed: Feed, tap: Tap, settings: Settings
) -> None:
    number = f"DIRECT{uuid.uuid4().hex[:6].upper()}"
    operator = operator_headers(settings, tenant)
    debtor = Debtor(name="Jan Janssens", email="jan@example.be", customer_number="C-DIRECT")
    await feed.send(number, "signed", **SIGNED, debtor=debtor)
    await feed.send(number, "updated", max_amount_cents=10_000)
    entry = await on_unclaimed_list(service, operator, number, messages=2)
    assert (entry["customer_number"], entry["name"], entry["change"]) == ("C-DIRECT", "Jan Janssens", "updated")
    assert entry["messages"] == 2
    for env in feed.sent:  # a replay adds nothing
        await feed.publish(env)
    assert tap.of("mandate.signed", mandate_number=number) == []
    listed = (await service.get("/v1/mandates", params={"customer_number": "C-DIRECT"}, headers=tenant.headers)).json()
    assert listed["items"] == []

    adopted = await service.post(f"/v1/unclaimed-mandates/{number}/adopt", headers=operator)
    assert adopted.status_code == 200, adopted.text
    assert (adopted.json()["status"], adopted.json()["max_amount_cents"]) == ("active", 10_000)
    event = await tap.wait_for("mandate.signed", mandate_number=number)
    assert event.data["customer_number"] == "C-DIRECT"
    assert event.data["mandate_id"] == adopted.json()["id"]
    again = await service.post(f"/v1/unclaimed-mandates/{number}/adopt", headers=operator)
    assert again.json()["id"] == adopted.json()["id"]
    ignored = await service.post(f"/v1/unclaimed-mandates/{number}/ignore", headers=operator)
    assert (ignored.status_code, ignored.json()["code"]) == (409, "unclaimed_mandate_adopted")
    assert (await service.get("/v1/unclaimed-mandates", headers=tenant.headers)).status_code == 403

    await feed.send(number, "cancelled", reason="MD01")  # later messages move it as any other
    await state_becomes(service, tenant, adopted.json()["id"], status="cancelled")


async def test_our_own_mandate_whose_invite_answer_was_lost_is_prepared_from_the_feed(
    service: httpx.AsyncClient, tenant: TenantCtx, feed: Feed, fake_sync: FakeSync, tap: Tap, settings: Settings
) -> None:
    customer = f"C-{uuid.uuid4().hex[:8]}"
    fake_sync.failures[customer] = (503, "twikey_unavailable", "outcome unknown", None)
    body = {"customer": {"number": customer, "name": "An", "email": "an@example.be"}, "delivery": "email"}
    lost = await service.post("/v1/mandates", json=body, headers={**tenant.headers, "Idempotency-Key": customer})
    assert lost.status_code == 503, lost.text
    mandate_id = lost.json()["mandate_id"]
    number = fake_sync.calls_for(customer)[-1]["body"]["mandate_number"]
    assert number == twikey_number(mandate_id)

    await feed.send(number, "signed", **SIGNED)  # the debtor signed the e-mail Twikey did send
    got = await state_becomes(service, tenant, mandate_id, status="active")
    assert got["mandate_number"] == number
    await tap.wait_for("mandate.signed", mandate_id=mandate_id)
    assert tap.of("mandate.prepared", mandate_id=mandate_id)
    items = (await service.get("/v1/unclaimed-mandates", headers=operator_headers(settings, tenant))).json()
    assert number not in {u["mandate_number"] for u in items["items"]}


async def test_out_of_order_messages_never_overwrite_a_newer_state(
    service: httpx.AsyncClient, tenant: TenantCtx, feed: Feed, tap: Tap
) -> None:
    m = await prepare(service, tenant)
    number = m["mandate_number"]
    signed = feed.envelope(number, "signed", seq=next(_seq), **SIGNED)
    cancelled = feed.envelope(number, "cancelled", seq=next(_seq), reason="MD01")
    await feed.publish(cancelled)
    await state_becomes(service, tenant, m["id"], status="cancelled")
    await feed.publish(signed)  # older: fills the bank data, does not revive the mandate
    got = await state_becomes(service, tenant, m["id"], iban="BE16645348971174")
    assert got["status"] == "cancelled"
    assert got["reason"] == "MD01"
    assert tap.of("mandate.signed", mandate_id=m["id"]) == []


async def test_replaying_the_feed_leaves_every_mandate_exactly_as_before(
    service: httpx.AsyncClient, tenant: TenantCtx, feed: Feed, tap: Tap, settings: Settings
) -> None:
    # A small history over several mandates, including one first seen in the feed (adopted).
    core = await prepare(service, tenant)
    b2b_ok = await prepare(service, tenant, "B2B")
    b2b_ko = await prepare(service, tenant, "B2B")
    direct = f"DIRECT{uuid.uuid4().hex[:6].upper()}"
    operator = operator_headers(settings, tenant)
    await feed.send(core["mandate_number"], "signed", **SIGNED)
    await feed.send(core["mandate_number"], "updated", max_amount_cents=10_000)
    await feed.send(core["mandate_number"], "updated", suspended=True)
    await feed.send(b2b_ok["mandate_number"], "signed", **{**SIGNED, "scheme": "B2B"})
    await feed.send(b2b_ko["mandate_number"], "cancelled", reason="Rejected by debtor bank")
    await feed.send(direct, "signed", **SIGNED, debtor=Debtor(customer_number="C-R", name="R"))
    await feed.send(direct, "cancelled", reason="MD01")
    await on_unclaimed_list(service, operator, direct)
    assert (await service.post(f"/v1/unclaimed-mandates/{direct}/adopt", headers=operator)).status_code == 200
    await state_becomes(service, tenant, core["id"], status="suspended", max_amount_cents=10_000)
    await state_becomes(service, tenant, b2b_ok["id"], status="active")
    await state_becomes(service, tenant, b2b_ko["id"], status="rejected")
    direct_id = (await tap.wait_for("mandate.cancelled", mandate_number=direct)).data["mandate_id"]

    async def snapshot() -> list[dict[str, Any]]:
        return list((await service.get("/v1/mandates", params={"limit": 200}, headers=tenant.headers)).json()["items"])

    before = await snapshot()
    assert {m["id"] for m in before} >= {core["id"], b2b_ok["id"], b2b_ko["id"], direct_id}
    published_before = len([e for e in tap.received if e.type.startswith("mandate.")])

    # 1. a feed reset: the same Twikey messages again, so the same envelope ids (sync-svc's contract)
    for env in feed.sent:
        await feed.publish(env)
    # 2. defensively, the same messages under new envelope ids (the inbox cannot help here)
    fresh = [Envelope(**{**env.model_dump(), "id": uuid.uuid4()}) for env in feed.sent]
    for env in fresh:
        await feed.publish(env)

    engine = create_async_engine(settings.database_url)
    try:

        async def all_handled() -> bool:
            async with engine.connect() as conn:
                ids = [e.id for e in fresh]
                count = await conn.scalar(
                    sa.text("SELECT count(*) FROM inbox WHERE event_id = ANY(:ids)"), {"ids": ids}
                )
                return count == len(fresh)

        await eventually(all_handled, within=30)
    finally:
        await engine.dispose()

    assert await snapshot() == before
    assert len([e for e in tap.received if e.type.startswith("mandate.")]) == published_before
