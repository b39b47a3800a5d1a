"""Poison messages on every work queue of every service: each is dead-lettered with a readable
reason (or, where the handler deliberately ignores it, acked without effect) and the queue keeps
flowing: a valid event published after them is handled.

The queues are not listed by hand: they come from each ``ServiceDefinition``'s consumers, and the
test fails if a queue has no entry in ``CASES`` — a new queue cannot go untested silently.
Messages are published straight to the work queue (default exchange), which is also the only way
an unknown event type reaches it. Each service gets its own exchange and queue prefix, so the
events one service's handlers emit never reach another service's queues in this test.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aio_pika
import pytest
import sqlalchemy as sa

from koppel_shared.events import Envelope, new_event
from koppel_shared.events.collection import CollectionPaid
from koppel_shared.events.commands import CollectRequested, MandateActionRequested
from koppel_shared.events.mandate import MandatePrepared, MandateSigned
from koppel_shared.events.registry import EventData
from koppel_shared.events.system import Ping
from koppel_shared.events.twikey import TwikeyCommandFailed, TwikeyMandateChanged, TwikeyPaylinkChanged
from koppel_shared.events.twikey import TwikeyTransactionChanged as TxChanged
from koppel_shared.messaging.broker import Broker
from koppel_shared.messaging.deadletters import DeadLetter, list_dead_letters
from koppel_shared.service import Runtime
from koppel_shared.settings import KoppelSettings
from koppel_shared.testing.fixtures import AMQP_URL
from koppel_shared.testing.service_checks import worker
from koppel_shared.testing.waiting import eventually

from .support import SERVICES, definition_of, migrated_databases, service_settings

pytestmark = pytest.mark.integration

TENANT = uuid.uuid4()  # the tenant of every event that has one
NOW = datetime.now(UTC)


# ------------------------------------------------------------------------------------ payloads
def mandate(cls: type[MandatePrepared | MandateSigned], **over: Any) -> EventData:
    values: dict[str, Any] = {
        "mandate_id": str(uuid.uuid4()),
        "mandate_number": "SBX1M00000042",
        "customer_number": "C-POISON",
        "status": "active",
        "scheme": "CORE",
        "version": 1,
        "updated_at": NOW,
    }
    return cls(**{**values, **over})


def mandate_changed() -> TwikeyMandateChanged:
    return TwikeyMandateChanged(
        twikey_event_id=f"mandate/{uuid.uuid4()}",
        feed_seq=1,
        event_time=NOW,
        mandate_number=f"SBX1M{uuid.uuid4().hex[:8]}",
        change="signed",
        scheme="CORE",
        state="signed",
        iban="BE68539007547034",
    )


def collection_paid() -> CollectionPaid:
    return CollectionPaid(
        collection_id=str(uuid.uuid4()),
        invoice_id=str(uuid.uuid4()),
        invoice_number="INV-POISON-1",
        customer_number="C-POISON",
        amount_cents=12_100,
        status="paid",
        method="direct_debit",
        twikey_transaction_id=str(uuid.uuid4().int)[:12],
        paid_at=NOW,
        version=3,
        updated_at=NOW,
    )


def tx_changed() -> TxChanged:
    return TxChanged(
        twikey_event_id=f"tx/{uuid.uuid4()}", feed_seq=7, transaction_id="42", amount_cents=100, state="PAID"
    )


def event(data: EventData, tenant: uuid.UUID | None = TENANT) -> Envelope:
    return new_event(data, tenant_id=tenant)


# ------------------------------------------------------------------------------ expectations


@dataclass
class Impossible:
    """A well-formed event this queue handles that cannot happen. ``reason`` set: dead-lettered
    after the retries with it; ``None``: the handler deliberately acks and ignores it, and
    ``no_effect`` proves it left nothing behind (``answered``: it was answered with an event)."""

    envelope: Callable[[], Envelope]
    reason: str | None
    why: str
    no_effect: str | None = None  # SQL with :id and :tenant that must count 0 (or more, see answered)
    answered: str | None = None  # SQL with :id and :tenant that must count 1


@dataclass
class QueueCase:
    handled_type: str  # a type this queue handles, sent with an unsupported version
    invalid_data: dict[str, Any]  # data of ``handled_type`` that does not match its schema
    impossible: list[Impossible]
    valid: Callable[[], Envelope]  # harmless and handled: must reach the inbox after the poison
    effect: str | None = None  # SQL with :id and :tenant that counts 1 once the valid one ran
    no_impossible: str | None = None  # why the queue has no impossible event


NO_TENANT = "ValueError"  # tenant-less business events are refused with ValueError by every handler

CASES: dict[str, QueueCase] = {
    **{
        f"{service}.system": QueueCase(
            handled_type="system.ping",
            invalid_data={"note": "no sender"},
            impossible=[],
            valid=lambda: event(Ping(sender="badinput", note="after the poison"), tenant=None),
            no_impossible="every well-formed system.ping is handled (it only logs): none is impossible",
        )
        for service in SERVICES
    },
    "mandate.twikey": QueueCase(
        handled_type="twikey.mandate.changed",
        invalid_data={"twikey_event_id": "x", "feed_seq": "not a number", "change": "exploded"},
        impossible=[
            Impossible(
                lambda: event(mandate_changed(), tenant=None),
                "ValueError: twikey.mandate.changed without tenant_id",
                "a feed message belongs to a tenant's Twikey connection",
            ),
            Impossible(
                lambda: event(TwikeyCommandFailed(command="suspend", mandate_number="NOPE1", code="x", message="m")),
                None,
                "a refused command for a mandate this tenant does not have: ignored on purpose (logged)",
                no_effect="SELECT count(*) FROM mandates WHERE mandate_number = 'NOPE1'",
            ),
        ],
        # A mandate Koppel never created waits on the operator's list of unclaimed mandates.
        valid=lambda: event(mandate_changed()),
        effect="SELECT count(*) FROM unclaimed_mandates WHERE tenant_id = :tenant",
    ),
    "collection.mandates": QueueCase(
        handled_type="mandate.signed",
        invalid_data={"mandate_id": "m", "status": "active"},
        impossible=[
            Impossible(
                lambda: event(mandate(MandateSigned), tenant=None),
                "ValueError: mandate.signed without tenant_id",
                "a mandate belongs to a tenant",
            )
        ],
        valid=lambda: event(mandate(MandatePrepared, status="prepared", customer_number=f"C-{uuid.uuid4().hex[:6]}")),
        effect="SELECT count(*) FROM mandates WHERE tenant_id = :tenant",
    ),
    "collection.twikey": QueueCase(
        handled_type="twikey.transaction.changed",
        invalid_data={"transaction_id": "42", "amount_cents": "a lot"},
        impossible=[
            Impossible(
                lambda: event(tx_changed(), tenant=None),
                "ValueError: twikey.transaction.changed without tenant_id",
                "a transaction belongs to a tenant",
            ),
            Impossible(
                lambda: event(TwikeyPaylinkChanged(twikey_event_id="pl/1", feed_seq=1, paylink_id="999", state="paid")),
                None,
                "a pay link we never made was paid: ignored on purpose (logged paylink.not_ours), nothing paid",
                no_effect="SELECT count(*) FROM collections WHERE tenant_id = :tenant",
            ),
        ],
        valid=lambda: event(
            TwikeyPaylinkChanged(twikey_event_id=f"pl/{uuid.uuid4()}", feed_seq=1, paylink_id="1000", state="pending")
        ),
    ),
    "sync.commands": QueueCase(
        handled_type="sync.collect_requested",
        invalid_data={"items": "everything"},
        impossible=[
            Impossible(
                lambda: event(MandateActionRequested(mandate_number="SBX1", action="cancel", reason="r"), tenant=None),
                "ValueError: sync.mandate_action_requested without tenant_id",
                "a command is carried out on a tenant's Twikey connection",
            ),
            Impossible(
                lambda: event(MandateActionRequested(mandate_number="SBX1", action="suspend")),
                None,
                "a command for a tenant without a Twikey connection: answered with twikey.command.failed",
                answered="SELECT count(*) FROM outbox WHERE tenant_id = :tenant AND type = 'twikey.command.failed'"
                " AND body LIKE '%twikey_not_connected%' AND body LIKE '%' || CAST(:id AS text) || '%'",
            ),
        ],
        valid=lambda: event(CollectRequested(items=[])),
    ),
    "bookkeeping.collections": QueueCase(
        handled_type="collection.paid",
        invalid_data={"collection_id": "c", "amount_cents": "lots"},
        impossible=[
            Impossible(
                lambda: event(collection_paid(), tenant=None),
                "ValueError: collection.paid",
                "a paid collection belongs to a tenant",
            )
        ],
        valid=lambda: event(collection_paid()),
        effect="SELECT count(*) FROM bookings WHERE tenant_id = :tenant",
    ),
    "bookkeeping.mandates": QueueCase(
        handled_type="mandate.signed",
        invalid_data={"mandate_id": "m", "version": "v"},
        impossible=[
            Impossible(
                lambda: event(mandate(MandateSigned, iban="BE68539007547034"), tenant=None),
                "ValueError: mandate.signed",
                "a signed mandate belongs to a tenant",
            )
        ],
        valid=lambda: event(mandate(MandateSigned, iban="BE68539007547034")),
        effect="SELECT count(*) FROM customer_updates WHERE tenant_id = :tenant",
    ),
    "notify.public-events": QueueCase(
        handled_type="collection.paid",
        invalid_data={"collection_id": "c"},
        impossible=[
            Impossible(
                lambda: event(collection_paid(), tenant=None),
                None,
                "an event without a tenant has no ERP to tell: ignored on purpose (logged), not in any feed",
                no_effect="SELECT count(*) FROM events WHERE event_id = :id",
            )
        ],
        valid=lambda: event(collection_paid()),
        effect="SELECT count(*) FROM events WHERE tenant_id = :tenant",
    ),
}


# ----------------------------------------------------------------------------------- the stack
@dataclass
class Queue:
    service: str
    purpose: str
    name: str  # with the prefix
    settings: KoppelSettings
    engine: Any
    sent: list[tuple[str, aio_pika.Message, str]] = field(default_factory=list)  # (label, message, reason)

    @property
    def key(self) -> str:
        return f"{self.service}.{self.purpose}"


@pytest.fixture(scope="module")
async def stack(broker_prefix: str) -> AsyncIterator[dict[str, tuple[KoppelSettings, Runtime]]]:
    """Every service with a fresh database, its own exchange and prefix, and its worker running."""
    async with migrated_databases() as urls, contextlib.AsyncExitStack() as stack:
        running: dict[str, tuple[KoppelSettings, Runtime]] = {}
        for service in SERVICES:
            settings = service_settings(service, urls[service], f"{broker_prefix}{service}.")
            await stack.enter_async_context(worker(definition_of(service), settings))
            runtime = await Runtime.open(service, settings, connect_broker=False)
            stack.push_async_callback(runtime.close)
            running[service] = (settings, runtime)
        try:
            yield running
        finally:
            await stack.aclose()
            await _delete_exchanges([s.exchange for s, _ in running.values()])


async def _delete_exchanges(names: list[str]) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        for name in names:
            channel = await connection.channel()
            for exchange in (name, f"{name}.unrouted"):
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(exchange)
            with contextlib.suppress(Exception):
                await channel.queue_delete(f"{name}.unrouted")


def _message(body: bytes, message_id: str, type_: str) -> aio_pika.Message:
    return aio_pika.Message(
        body=body,
        message_id=message_id,
        type=type_,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def _raw_envelope(type_: str, version: int, data: dict[str, Any]) -> tuple[str, bytes]:
    envelope = Envelope(type=type_, version=version, tenant_id=TENANT, data=data)
    return str(envelope.id), envelope.to_json()


async def _count(queue: Queue, sql: str, envelope: Envelope) -> int:
    async with queue.engine.connect() as conn:
        return int(await conn.scalar(sa.text(sql), {"id": str(envelope.id), "tenant": str(envelope.tenant_id)}) or 0)


async def _inbox_row(queue: Queue, envelope: Envelope) -> bool:
    async with queue.engine.connect() as conn:
        found = await conn.scalar(
            sa.text("SELECT count(*) FROM inbox WHERE consumer = :c AND event_id = :id"),
            {"c": queue.key, "id": envelope.id},
        )
    return bool(found)


async def test_poison_messages_on_every_queue_are_dead_lettered_with_a_reason_and_the_queue_keeps_flowing(
    stack: dict[str, tuple[KoppelSettings, Runtime]],
) -> None:
    queues: list[Queue] = []
    for service, (settings, runtime) in stack.items():
        definition = definition_of(service)
        for spec in definition.consumers(runtime, await definition.open_dependencies(runtime)):
            name = runtime.queue(spec.purpose, spec.bindings).name
            queues.append(Queue(service, spec.purpose, name, settings, runtime.engine))
    assert sorted(q.key for q in queues) == sorted(CASES), "a work queue without poison cases (add it to CASES)"

    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for q in queues:
            await _wait_for_queue(connection, q.name)

        valid: dict[str, Envelope] = {}
        ignored: dict[str, list[tuple[Impossible, Envelope]]] = {}
        for q in queues:
            case = CASES[q.key]
            poison: list[tuple[str, aio_pika.Message, str]] = [
                ("undecodable", _message(b"\x00\xff{not json", str(uuid.uuid4()), ""), "undecodable:"),
            ]
            mid, body = _raw_envelope("koppel.nonexistent_happened", 1, {})
            poison.append(("unknown type", _message(body, mid, "koppel.nonexistent_happened"), "unknown event type"))
            good = case.valid()
            mid, body = _raw_envelope(case.handled_type, 99, good.data if good.type == case.handled_type else {})
            poison.append(
                ("unknown version", _message(body, mid, case.handled_type), "newer than the supported version")
            )
            mid, body = _raw_envelope(case.handled_type, 1, case.invalid_data)
            poison.append(("data not matching its schema", _message(body, mid, case.handled_type), "undecodable:"))
            for impossible in case.impossible:
                env = impossible.envelope()
                if impossible.reason is None:
                    ignored.setdefault(q.key, []).append((impossible, env))
                    await _publish(channel, q.name, _message(env.to_json(), str(env.id), env.type))
                else:
                    poison.append((impossible.why, _message(env.to_json(), str(env.id), env.type), impossible.reason))
            for label, message, reason in poison:
                q.sent.append((label, message, reason))
                await _publish(channel, q.name, message)
            # After all the poison: a valid event the queue handles.
            valid[q.key] = good
            await _publish(channel, q.name, _message(good.to_json(), str(good.id), good.type))

        # The queue kept flowing: the valid event after the poison was handled (inbox row, effect).
        for q in queues:
            good = valid[q.key]

            async def handled(q: Queue = q, good: Envelope = good) -> bool:
                return await _inbox_row(q, good)

            await eventually(handled, within=20)
            effect = CASES[q.key].effect
            if effect is not None:
                assert await _count(q, effect, good) >= 1, f"{q.key}: the valid event had no effect"

        # Every poison message is in its service's dead-letter queue, once, with a readable reason
        # naming the queue it came from; nothing else is there.
        broker = Broker(AMQP_URL, "unused")
        await broker.connect()
        try:
            for service, (settings, _) in stack.items():
                mine = [q for q in queues if q.service == service]
                expected = {m.message_id: (q, label, reason) for q in mine for label, m, reason in q.sent}

                async def all_dead(
                    service: str = service, settings: KoppelSettings = settings, n: int = len(expected)
                ) -> bool:
                    return len(await list_dead_letters(broker, service, settings.queue_prefix)) >= n

                await eventually(all_dead, within=20)
                letters = await list_dead_letters(broker, service, settings.queue_prefix)
                assert sorted(d.message_id for d in letters) == sorted(expected), _describe(letters)
                for letter in letters:
                    q, label, reason = expected[letter.message_id]
                    assert letter.queue == q.name, (label, letter)
                    assert reason in letter.reason, f"{q.key} / {label}: reason {letter.reason!r}"
                    if not letter.reason.startswith("undecodable:"):
                        # a handler error: retried first, dead-lettered after the last attempt
                        assert letter.attempts == settings.max_attempts, (label, letter)
                    assert letter.failed_at
                    # ... and it had no effect: never recorded as handled
                    async with q.engine.connect() as conn:
                        recorded = await conn.scalar(
                            sa.text("SELECT count(*) FROM inbox WHERE CAST(event_id AS text) = :id"),
                            {"id": letter.message_id},
                        )
                    assert recorded == 0, (label, letter)
        finally:
            await broker.close()

        # Deliberately ignored events were acked (inbox row) and left nothing behind.
        for q in queues:
            for impossible, env in ignored.get(q.key, []):
                assert await _inbox_row(q, env), f"{q.key}: {impossible.why} was not acked"
                if impossible.no_effect is not None:
                    assert await _count(q, impossible.no_effect, env) == 0, f"{q.key}: {impossible.why} had an effect"
                if impossible.answered is not None:
                    assert await _count(q, impossible.answered, env) == 1, f"{q.key}: {impossible.why} not answered"

        # And nothing is stuck: every work queue is empty again.
        for q in queues:
            declared = await channel.declare_queue(q.name, passive=True)
            assert declared.declaration_result.message_count == 0, q.key

    # The exceptions are few and each says why (see CASES): they are part of the contract.
    assert sorted(k for k, c in CASES.items() if not c.impossible) == [f"{s}.system" for s in sorted(SERVICES)]
    assert all(c.no_impossible for c in CASES.values() if not c.impossible)


async def _publish(channel: aio_pika.abc.AbstractChannel, queue_name: str, message: aio_pika.Message) -> None:
    await channel.default_exchange.publish(message, routing_key=queue_name, mandatory=True)


async def _wait_for_queue(connection: aio_pika.abc.AbstractConnection, name: str) -> None:
    async def declared() -> bool:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
            return True
        except aio_pika.exceptions.ChannelClosed:
            return False
        finally:
            if not channel.is_closed:
                await channel.close()

    await eventually(declared, within=15)


def _describe(letters: list[DeadLetter]) -> str:
    return "\n".join(f"{d.message_id} {d.type} {d.queue}: {d.reason[:200]}" for d in letters)
