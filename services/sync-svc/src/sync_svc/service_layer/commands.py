"""Carrying out Twikey commands for the other services.

- invite (synchronous, internal HTTP): the ERP wants the sign URL in its response;
- collect: one ``POST /transaction`` per item with ``Idempotency-Key`` = f(collection id), so a
  retried command never collects twice. A 409 ``err_duplicate_ref`` means the first attempt got
  through: we look the transaction up by its ``ref`` (= collection id) and carry on. Each item is
  recorded in its own transaction with its result event, so a redelivered command skips the items
  already done — even after Twikey's 24 h idempotency window. ``/transaction/bulk`` is not used:
  it takes no Idempotency-Key, so a retry after a timeout could create every item twice;
- mandate actions (cancel, suspend, resume, remind) and pay links.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from koppel_shared.errors import AppError, Conflict, Unavailable
from koppel_shared.events import Envelope, new_event
from koppel_shared.events.commands import CollectItem, CollectRequested, MandateActionRequested, PaylinkRequested
from koppel_shared.events.registry import EventData
from koppel_shared.events.twikey import (
    TwikeyCommandFailed,
    TwikeyPaylinkCreated,
    TwikeyTransactionCreated,
    TwikeyTransactionRefused,
)
from koppel_shared.logging import get_logger
from koppel_shared.messaging.inbox import current_attempt
from koppel_shared.service import Runtime
from sync_svc.adapters.orm import twikey_paylinks, twikey_transactions
from sync_svc.adapters.twikey_client import TwikeyClient, TwikeyError, TwikeyOutcomeUnknown, TwikeyUnavailable
from sync_svc.domain.invite import InviteRequest, invite_form, twikey_debtor_params
from sync_svc.domain.money import to_euros
from sync_svc.service_layer import connections, invites
from sync_svc.service_layer.connections import Connection
from sync_svc.service_layer.resources import Resources
from sync_svc.settings import Settings

log = get_logger(__name__)

NAMESPACE = uuid.UUID("0b8f4a52-3c57-4b8e-9f0e-5d6f3f1f2a11")


def idempotency_key(kind: str, tenant_id: uuid.UUID, business_id: str) -> str:
    """≤ 64 characters, stable for a business id (Twikey keeps a key 24 h)."""
    return f"koppel-{kind}-{uuid.uuid5(NAMESPACE, f'{tenant_id}/{business_id}').hex}"


def result_event(cause: Envelope, data: EventData, key: str) -> Envelope:
    """A command's result with an id derived from what it is about, so emitting it again (after a
    redelivery) is a no-op in the outbox and downstream."""
    event_id = uuid.uuid5(NAMESPACE, f"{cause.tenant_id}/{key}")
    return new_event(
        data, tenant_id=cause.tenant_id, correlation_id=cause.correlation_id, causation_id=str(cause.id), id=event_id
    )


async def _connection(runtime: Runtime, tenant_id: uuid.UUID) -> Connection:
    async with runtime.uow() as uow:
        return await connections.require(uow, runtime.secrets, tenant_id)


def _client(resources: Resources, connection: Connection) -> TwikeyClient:
    return resources.gateway.client(connection.credentials)


# ---- invite ---------------------------------------------------------------------------------------
async def invite(
    runtime: Runtime[Settings], resources: Resources, tenant_id: uuid.UUID, request: InviteRequest
) -> dict[str, Any]:
    connection = await _connection(runtime, tenant_id)
    template = connection.template_for(request.scheme)
    if not template:
        raise Conflict(
            "twikey_template_missing",
            f"no {request.scheme} template is configured on this tenant's Twikey connection",
        )
    client = _client(resources, connection)
    if request.mandate_number:
        answer = await invites.invite_once(runtime, client, tenant_id, request, template)
    else:
        # Twikey numbers the mandate: a lost answer cannot be looked up, so it is never sent twice.
        try:
            got = await client.invite(invite_form(request, template))
        except TwikeyError as exc:
            raise invites.refused(exc) from exc
        except TwikeyUnavailable as exc:
            raise Unavailable("twikey_unavailable", f"Twikey could not be reached: {exc}") from exc
        answer = {"mandate_number": got.get("mndtId"), "sign_url": got.get("url"), "key": got.get("key")}
    log.info("mandate.invited", tenant_id=str(tenant_id), reference=request.reference, mandate=answer["mandate_number"])
    return answer


# ---- attempts ---------------------------------------------------------------------------------------
def _last_attempt() -> bool:
    """The consumer's last try at this command: Twikey still unavailable now, the command is
    answered "unavailable" (the sender waits for an answer) instead of raised into the dead-letter
    queue. The inbox runner counts the tries (``current_attempt``)."""
    return current_attempt().last


# ---- collect ----------------------------------------------------------------------------------------
async def _recorded(runtime: Runtime, tenant_id: uuid.UUID, collection_id: str) -> str | None:
    async with runtime.uow() as uow:
        return await uow.session.scalar(
            sa.select(twikey_transactions.c.transaction_id).where(
                twikey_transactions.c.tenant_id == tenant_id, twikey_transactions.c.collection_id == collection_id
            )
        )


async def _record_created(runtime: Runtime, cause: Envelope, item: CollectItem, entry: dict[str, Any]) -> None:
    tenant_id = cause.tenant_id
    assert tenant_id is not None
    tx_id = str(entry["id"])
    async with runtime.uow() as uow:
        stmt = insert(twikey_transactions).values(
            tenant_id=tenant_id,
            transaction_id=tx_id,
            collection_id=item.collection_id,
            mandate_number=item.mandate_number,
            amount_cents=item.amount_cents,
            last_state="OPEN",
        )
        # The feed may have recorded the transaction first (without our collection id).
        await uow.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["tenant_id", "transaction_id"], set_={"collection_id": item.collection_id}
            )
        )
        await uow.emit(_created_event(cause, item, tx_id))
        await uow.commit()


def _created_event(cause: Envelope, item: CollectItem, tx_id: str) -> Envelope:
    data = TwikeyTransactionCreated(
        collection_id=item.collection_id,
        transaction_id=tx_id,
        mandate_number=item.mandate_number,
        amount_cents=item.amount_cents,
    )
    return result_event(cause, data, f"transaction.created/{item.collection_id}")


async def _refuse(runtime: Runtime, cause: Envelope, item: CollectItem, code: str, message: str) -> None:
    data = TwikeyTransactionRefused(
        collection_id=item.collection_id, mandate_number=item.mandate_number, code=code, message=message
    )
    async with runtime.uow() as uow:
        await uow.emit(result_event(cause, data, f"transaction.refused/{item.collection_id}"))
        await uow.commit()


def transaction_form(item: CollectItem) -> dict[str, str]:
    form = {
        "mndtId": item.mandate_number,
        "message": item.message,
        "amount": to_euros(item.amount_cents),
        # ref = our collection id: the transaction feed names it, and a 409 is looked up by it.
        "ref": item.collection_id,
    }
    if item.requested_date is not None:
        form["reqcolldt"] = item.requested_date.isoformat()
    return form


async def _collect_one(runtime: Runtime, client: TwikeyClient, cause: Envelope, item: CollectItem) -> None:
    tenant_id = cause.tenant_id
    assert tenant_id is not None
    existing = await _recorded(runtime, tenant_id, item.collection_id)
    if existing is not None:
        async with runtime.uow() as uow:  # re-emit: same id, so a no-op if it was already sent
            await uow.emit(_created_event(cause, item, existing))
            await uow.commit()
        return
    key = idempotency_key("tx", tenant_id, item.collection_id)
    try:
        entry = await client.create_transaction(transaction_form(item), key)
    except TwikeyOutcomeUnknown:
        # Sent, answer lost: look it up by our reference; if it is not there (yet), the command
        # comes back later and the Idempotency-Key keeps a second send from collecting twice.
        found = await client.transaction_by_ref(item.collection_id)
        if found is None:
            raise
        entry = found
    except TwikeyError as exc:
        if exc.code != "err_duplicate_ref":
            log.info("collect.refused", collection_id=item.collection_id, code=exc.code, message=exc.message)
            await _refuse(runtime, cause, item, exc.code, exc.message)
            return
        # An earlier attempt created it (its answer was lost): find it by our reference.
        found = await client.transaction_by_ref(item.collection_id)
        if found is None:
            raise TwikeyUnavailable(f"Idempotency-Key used but no transaction with ref {item.collection_id}") from exc
        entry = found
    await _record_created(runtime, cause, item, entry)


async def collect(runtime: Runtime[Settings], resources: Resources, envelope: Envelope, data: CollectRequested) -> None:
    tenant_id = envelope.tenant_id
    if tenant_id is None:
        raise ValueError("sync.collect_requested without tenant_id")
    attempt = current_attempt().number
    try:
        connection = await _connection(runtime, tenant_id)
    except AppError:
        for item in data.items:
            await _refuse(runtime, envelope, item, "not_connected", "the tenant has no Twikey connection")
        return
    client = _client(resources, connection)
    gate = asyncio.Semaphore(runtime.settings.collect_concurrency)

    async def one(item: CollectItem) -> BaseException | None:
        async with gate:
            try:
                await _collect_one(runtime, client, envelope, item)
            except TwikeyUnavailable as exc:
                return exc
            return None

    failures = [
        (item, exc) for item, exc in zip(data.items, await asyncio.gather(*map(one, data.items)), strict=True) if exc
    ]
    if not failures:
        return
    if not _last_attempt():
        # Raise: the command comes back from the delayed-retry queue; done items are skipped.
        raise failures[0][1]
    for item, exc in failures:
        await _refuse(runtime, envelope, item, "unavailable", f"Twikey unavailable after {attempt} attempts: {exc}")


# ---- mandate actions ------------------------------------------------------------------------------
async def _mandate_action(client: TwikeyClient, data: MandateActionRequested) -> None:
    number = data.mandate_number
    if data.action == "cancel":
        try:
            await client.cancel_mandate(number, data.reason or "Cancelled by creditor")
        except TwikeyError as exc:
            # A retry after a lost answer finds the mandate cancelled already: that is success.
            if exc.code == "err_mandate_invalid_state" and await client.mandate_state(number) == "CANCELLED":
                return
            raise
    elif data.action == "suspend":
        await client.set_mandate_state(number, "passive")
    elif data.action == "resume":
        await client.set_mandate_state(number, "active")
    else:
        await client.remind(number)


async def mandate_action(
    runtime: Runtime[Settings], resources: Resources, envelope: Envelope, data: MandateActionRequested
) -> None:
    tenant_id = envelope.tenant_id
    if tenant_id is None:
        raise ValueError("sync.mandate_action_requested without tenant_id")
    attempt = current_attempt().number
    failure: tuple[str, str] | None = None
    try:
        connection = await _connection(runtime, tenant_id)
        await _mandate_action(_client(resources, connection), data)
    except AppError as exc:
        failure = (exc.code, exc.detail)
    except TwikeyError as exc:
        failure = (exc.code, exc.message)
    except TwikeyUnavailable as exc:
        if not _last_attempt():
            raise
        failure = ("unavailable", f"Twikey unavailable after {attempt} attempts: {exc}")
    if failure is None:
        log.info("mandate.action_done", action=data.action, mandate=data.mandate_number)
        return
    log.warning("mandate.action_failed", action=data.action, mandate=data.mandate_number, code=failure[0])
    event = TwikeyCommandFailed(
        command=data.action, mandate_number=data.mandate_number, code=failure[0], message=failure[1]
    )
    async with runtime.uow() as uow:
        await uow.emit(result_event(envelope, event, f"command.failed/{envelope.id}"))
        await uow.commit()


# ---- pay links --------------------------------------------------------------------------------------
# The longest value Twikey takes in each optional pay-link field (development-kit docs/openapi.yaml,
# POST /payment/link maxLength). Koppel keeps longer ones; they are left out of the request rather
# than getting the whole link refused, since the link works without them.
PAYLINK_MAX_LENGTHS = {
    "email": 70,
    "firstname": 50,
    "lastname": 50,
    "companyName": 140,
    "mobile": 50,
    "customerNumber": 50,
    "l": 5,
    "address": 70,
    "zip": 12,
    "city": 50,
    "country": 2,
}


def paylink_form(data: PaylinkRequested) -> dict[str, str]:
    c = data.customer
    form = {"title": data.message, "amount": to_euros(data.amount_cents), "remittance": data.reference}
    first, _, last = (c.name or "").partition(" ")
    optional = {
        **twikey_debtor_params(c),
        "firstname": first or None,
        "lastname": last or None,
        "ct": data.template_id,
    }
    form.update({k: v for k, v in optional.items() if v and len(v) <= PAYLINK_MAX_LENGTHS.get(k, len(v))})
    return form


async def paylink(runtime: Runtime[Settings], resources: Resources, envelope: Envelope, data: PaylinkRequested) -> None:
    tenant_id = envelope.tenant_id
    if tenant_id is None:
        raise ValueError("sync.paylink_requested without tenant_id")
    attempt = current_attempt().number
    async with runtime.uow() as uow:
        done = (
            await uow.session.execute(
                sa.select(twikey_paylinks).where(
                    twikey_paylinks.c.tenant_id == tenant_id, twikey_paylinks.c.reference == data.reference
                )
            )
        ).first()
    if done is not None:
        await _paylink_created(runtime, envelope, data.reference, done.paylink_id, done.url)
        return
    failure: tuple[str, str] | None = None
    try:
        client = _client(resources, await _connection(runtime, tenant_id))
        try:
            link = await client.create_paylink(paylink_form(data), idempotency_key("link", tenant_id, data.reference))
        except TwikeyOutcomeUnknown:
            # Sent, answer lost: look it up by our reference before anything is sent again.
            found = await client.paylink_by_ref(data.reference)
            if found is None:
                raise
            link = found
        except TwikeyError as exc:
            if exc.code not in ("err_duplicate_ref", "err_duplicate_tx"):
                raise
            # Already made by an earlier attempt: find it by our reference.
            found = await client.paylink_by_ref(data.reference)
            if found is None:
                raise
            link = found
        await _paylink_created(runtime, envelope, data.reference, str(link["id"]), str(link.get("url") or ""))
        return
    except AppError as exc:
        failure = (exc.code, exc.detail)
    except TwikeyError as exc:
        failure = (exc.code, exc.message)
    except TwikeyUnavailable as exc:
        if not _last_attempt():
            raise
        failure = ("unavailable", f"Twikey unavailable after {attempt} attempts: {exc}")
    event = TwikeyCommandFailed(
        command="paylink", mandate_number="", code=failure[0], message=failure[1], reference=data.reference
    )
    async with runtime.uow() as uow:
        await uow.emit(result_event(envelope, event, f"command.failed/{envelope.id}"))
        await uow.commit()


async def _paylink_created(runtime: Runtime, cause: Envelope, reference: str, link_id: str, url: str) -> None:
    tenant_id = cause.tenant_id
    async with runtime.uow() as uow:
        await uow.session.execute(
            insert(twikey_paylinks)
            .values(tenant_id=tenant_id, reference=reference, paylink_id=link_id, url=url)
            .on_conflict_do_nothing()
        )
        data = TwikeyPaylinkCreated(reference=reference, paylink_id=link_id, url=url)
        await uow.emit(result_event(cause, data, f"paylink.created/{reference}"))
        await uow.commit()
