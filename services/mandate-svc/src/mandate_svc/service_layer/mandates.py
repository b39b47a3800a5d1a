"""Use cases of mandate-svc: prepare a mandate (with sync-svc's invite), the ERP's commands, and
the lifecycle driven by sync-svc's events. Each takes a unit of work (or a factory of them, when
an outside call must happen between two transactions) and plain values."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
from koppel_shared.logging import get_logger
from mandate_svc.adapters import repository as repo
from mandate_svc.adapters import unclaimed
from mandate_svc.adapters.sync_client import InviteRefused, InviteRequest, SyncClient, SyncUnavailable
from mandate_svc.domain import model
from mandate_svc.domain.model import FeedMessage, Mandate, Status
from mandate_svc.domain.numbers import mandate_id_of, twikey_number
from mandate_svc.domain.preconditions import MandateRequest, check_new_mandate
from mandate_svc.service_layer.events import emit_outcome

log = get_logger(__name__)

# Ids derived from a business key, so a retry (Idempotency-Key) or a replayed feed (mandate
# number) always names the same mandate.
MANDATE_NAMESPACE = uuid.UUID("b7f8d0b4-6a55-4a2b-9a3e-0d8c52c0a6f1")


def utcnow() -> datetime:
    return datetime.now(UTC)


class NotFound(Exception):
    pass


class IdempotencyConflict(Exception):
    pass


class AlreadyAdopted(Exception):
    pass


class RequestInProgress(Exception):
    """Another request with this Idempotency-Key is still inviting at Twikey (past our wait)."""

    def __init__(self, mandate_id: str, retry_after: int) -> None:
        super().__init__(mandate_id)
        self.mandate_id = mandate_id
        self.retry_after = retry_after


@dataclass(frozen=True)
class KeyPolicy:
    """How requests with one Idempotency-Key take turns. ``lease``: how long one request may hold
    the key while it invites (longer than the invite call can take, so nobody takes over a live
    one; a crashed holder's key is free again after it). ``wait``: how long a concurrent duplicate
    waits for the first one's answer before it is told 409 ``request_in_progress``."""

    lease: timedelta = timedelta(seconds=120)
    wait: timedelta = timedelta(seconds=10)
    poll: float = 0.1


class InviteRefusedByTwikey(Exception):
    def __init__(self, refused: InviteRefused) -> None:
        super().__init__(refused.detail)
        self.refused = refused


class InviteUnavailable(Exception):
    def __init__(self, detail: str, mandate_id: str | None) -> None:
        super().__init__(detail)
        self.mandate_id = mandate_id


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _invite_request(m: Mandate, request: MandateRequest) -> InviteRequest:
    c = request.customer
    return InviteRequest(
        reference=m.id,
        mandate_number=twikey_number(m.id),
        scheme=m.scheme,
        delivery=request.delivery,
        customer=c.as_debtor(),
    )


def _new_mandate(tenant_id: str, mandate_id: str, request: MandateRequest, now: datetime) -> Mandate:
    c = request.customer
    return Mandate(
        id=mandate_id,
        tenant_id=tenant_id,
        customer_number=c.number,
        scheme=request.scheme,
        base_status=Status.REQUESTED,
        created_at=now,
        updated_at=now,
        delivery=request.delivery,
        **{k: v for k, v in asdict(c).items() if k != "number"},
    )


async def prepare_mandate(
    new_uow: Callable[[], UnitOfWork],
    sync: SyncClient,
    tenant_id: str,
    request: MandateRequest,
    body_hash: str,
    idempotency_key: str | None = None,
    correlation_id: str | None = None,
    policy: KeyPolicy = KeyPolicy(),
) -> tuple[Mandate, bool]:
    """Check the preconditions, store the mandate as *requested*, have sync-svc invite it at Twikey
    (our mandate id is the reference, and the mandate number derived from it is the one Twikey
    gives it), and store it as *prepared* with the mandate number and sign URL, publishing
    ``mandate.prepared``. Returns (mandate, replayed).

    With an ``Idempotency-Key`` the mandate id is derived from the key and one request at a time
    holds the key (a lease): a concurrent duplicate waits for the first one's answer and replays
    it, or gets ``RequestInProgress`` after ``policy.wait``. A mandate still *requested* (Twikey
    unreachable, or the invite's outcome unknown) is invited again by the next request with the
    key: sync-svc looks the mandate number up before sending anything. The same key with another
    body is an ``IdempotencyConflict``. Without a key nothing stays behind when the invite fails."""
    request = check_new_mandate(request)  # raises PreconditionFailed: nothing stored or sent
    if not idempotency_key:
        mandate = _new_mandate(tenant_id, str(uuid.uuid4()), request, utcnow())
        async with new_uow() as uow:
            await repo.of(uow).add(mandate)
            await uow.commit()
        return await _invite(new_uow, sync, tenant_id, mandate, request, None, correlation_id), False

    mandate_id = str(uuid.uuid5(MANDATE_NAMESPACE, f"{tenant_id}/key/{idempotency_key}"))
    deadline = time.monotonic() + policy.wait.total_seconds()
    while True:
        turn = await _take_turn(new_uow, tenant_id, idempotency_key, body_hash, mandate_id, request, policy)
        if turn is not None:
            mandate, mine = turn
            if not mine:
                return mandate, True
            return await _invite(new_uow, sync, tenant_id, mandate, request, idempotency_key, correlation_id), False
        if time.monotonic() >= deadline:
            raise RequestInProgress(mandate_id, retry_after=max(1, int(policy.wait.total_seconds() / 2)))
        await asyncio.sleep(policy.poll)


async def _take_turn(
    new_uow: Callable[[], UnitOfWork],
    tenant_id: str,
    key: str,
    body_hash: str,
    mandate_id: str,
    request: MandateRequest,
    policy: KeyPolicy,
) -> tuple[Mandate, bool] | None:
    """(mandate, True): this request holds the key and invites. (mandate, False): it was done
    before, replay it. None: another request holds the key now."""
    now = utcnow()
    async with new_uow() as uow:
        claimed = await repo.of(uow).claim_idempotency_key(tenant_id, key, body_hash, mandate_id, now + policy.lease)
        if claimed is None:
            mandate = _new_mandate(tenant_id, mandate_id, request, now)
            await repo.of(uow).add(mandate)
            await uow.commit()
            return mandate, True
        if claimed.request_hash != body_hash:
            raise IdempotencyConflict(key)
        existing = await repo.of(uow).get(tenant_id, claimed.mandate_id)
        if existing is None:
            raise NotFound(claimed.mandate_id)
        if existing.status != Status.REQUESTED:
            return existing, False
        if claimed.lease_until is not None and claimed.lease_until > now:
            return None
        await repo.of(uow).lease_idempotency_key(tenant_id, key, now + policy.lease)
        await uow.commit()
        return existing, True


async def _invite(
    new_uow: Callable[[], UnitOfWork],
    sync: SyncClient,
    tenant_id: str,
    mandate: Mandate,
    request: MandateRequest,
    idempotency_key: str | None,
    correlation_id: str | None,
) -> Mandate:
    try:
        result = await sync.invite(tenant_id, _invite_request(mandate, request))
    except InviteRefused as refused:
        await _forget_requested(new_uow, tenant_id, mandate.id)
        raise InviteRefusedByTwikey(refused) from refused
    except SyncUnavailable as exc:
        if idempotency_key:
            await _release(new_uow, tenant_id, idempotency_key)
        else:
            await _forget_requested(new_uow, tenant_id, mandate.id)
        raise InviteUnavailable(str(exc), mandate.id if idempotency_key else None) from exc

    async with new_uow() as uow:
        current = await repo.of(uow).get(tenant_id, mandate.id, lock=True)
        if current is None:
            raise NotFound(mandate.id)
        outcome = model.mark_prepared(current, result.mandate_number, result.sign_url, utcnow())
        if outcome.mandate is not current:
            await repo.of(uow).save(outcome.mandate)
            await emit_outcome(uow, outcome, correlation_id=correlation_id)
        if idempotency_key:
            await repo.of(uow).lease_idempotency_key(tenant_id, idempotency_key, None)
        await uow.commit()
    return outcome.mandate


async def _release(new_uow: Callable[[], UnitOfWork], tenant_id: str, key: str) -> None:
    async with new_uow() as uow:
        await repo.of(uow).lease_idempotency_key(tenant_id, key, None)
        await uow.commit()


async def _forget_requested(new_uow: Callable[[], UnitOfWork], tenant_id: str, mandate_id: str) -> None:
    async with new_uow() as uow:
        current = await repo.of(uow).get(tenant_id, mandate_id, lock=True)
        if current is not None and current.status == Status.REQUESTED:
            await repo.of(uow).remove(tenant_id, mandate_id)
            await uow.commit()


async def get_mandate(uow: UnitOfWork, tenant_id: str, mandate_id: str) -> Mandate:
    m = await repo.of(uow).get(tenant_id, mandate_id)
    if m is None:
        raise NotFound(mandate_id)
    return m


async def act_on_mandate(
    uow: UnitOfWork,
    tenant_id: str,
    mandate_id: str,
    action: str,
    reason: str | None = None,
    correlation_id: str | None = None,
) -> Mandate:
    """cancel / suspend / resume / remind: the state change and the command to sync-svc commit
    together (outbox)."""
    m = await repo.of(uow).get(tenant_id, mandate_id, lock=True)
    if m is None:
        raise NotFound(mandate_id)
    outcome = model.request_action(m, action, reason, utcnow())
    if outcome.changed:
        await repo.of(uow).save(outcome.mandate)
    await emit_outcome(uow, outcome, correlation_id=correlation_id)
    await uow.commit()
    return outcome.mandate


async def customer_mandates(uow: UnitOfWork, tenant_id: str, customer_number: str) -> list[Mandate]:
    return await repo.of(uow).for_customer(tenant_id, customer_number)


def collectable_mandate(mandates: list[Mandate]) -> Mandate | None:
    """The mandate to collect on now: an active one, most recently signed first."""
    active = [m for m in mandates if m.collectable]
    epoch = datetime.min.replace(tzinfo=UTC)
    active.sort(key=lambda m: (m.signed_at or epoch, m.created_at), reverse=True)
    return active[0] if active else None


# --- sync-svc's events -------------------------------------------------------------------------


async def apply_feed_message(uow: UnitOfWork, envelope: Envelope, message: FeedMessage) -> Mandate | None:
    """One Twikey mandate-feed message. A mandate number we did not hand out is not adopted: it
    waits on the operator's unclaimed list (None is returned)."""
    if envelope.tenant_id is None:
        raise ValueError("twikey.mandate.changed without tenant_id")
    tenant_id = str(envelope.tenant_id)
    now = utcnow()
    m = await repo.of(uow).get_by_number(tenant_id, message.mandate_number, lock=True)
    if m is None:
        m = await _own_without_answer(uow, tenant_id, message.mandate_number, envelope, now)
    if m is None:
        adopted = await unclaimed.of(uow).get(tenant_id, message.mandate_number)
        if adopted is None or adopted.status != unclaimed.ADOPTED:
            await unclaimed.of(uow).record(tenant_id, message, now)
            log.warning("mandate.unclaimed_in_feed", mandate_number=message.mandate_number, change=message.change)
            return None
        raise NotFound(message.mandate_number)  # adopted, yet gone: retried, then a dead letter to look at
    return await _apply(uow, m, message, now, cause=envelope)


async def _apply(
    uow: UnitOfWork,
    m: Mandate,
    message: FeedMessage,
    now: datetime,
    cause: Envelope | None = None,
    correlation_id: str | None = None,
) -> Mandate:
    outcome = model.apply_feed(m, message, now)
    if outcome.changed:
        await repo.of(uow).save(outcome.mandate)
        await emit_outcome(uow, outcome, cause=cause, correlation_id=correlation_id)
    else:
        log.info("mandate.feed_message_no_change", mandate_number=message.mandate_number, seq=message.feed_seq)
    return outcome.mandate


async def _own_without_answer(
    uow: UnitOfWork, tenant_id: str, number: str, cause: Envelope, now: datetime
) -> Mandate | None:
    """Our mandate whose invite answer never reached us (the number is derived from its id):
    it is prepared under this number now, then the message applies as usual."""
    mandate_id = mandate_id_of(number)
    m = await repo.of(uow).get(tenant_id, mandate_id, lock=True) if mandate_id else None
    if m is None or m.mandate_number is not None:
        return None
    outcome = model.mark_prepared(m, number, None, now)
    await repo.of(uow).save(outcome.mandate)
    await emit_outcome(uow, outcome, cause=cause)
    log.info("mandate.number_learnt_from_feed", mandate_id=m.id, mandate_number=number)
    return outcome.mandate


# --- the operator's unclaimed mandates -----------------------------------------------------------


async def list_unclaimed(uow: UnitOfWork, tenant_id: str, status: str, limit: int = 200) -> list[unclaimed.Unclaimed]:
    return await unclaimed.of(uow).list_by_status(tenant_id, status, limit)


async def adopt_unclaimed(uow: UnitOfWork, tenant_id: str, number: str, correlation_id: str | None = None) -> Mandate:
    """The operator adopts a mandate Koppel did not create: it becomes a mandate as if its feed
    messages had been applied when they came (publishing ``mandate.signed`` and what followed).
    Adopting it again gives the same mandate."""
    entry = await unclaimed.of(uow).get(tenant_id, number, lock=True)
    if entry is None:
        raise NotFound(number)
    now = utcnow()
    if entry.status != unclaimed.ADOPTED:
        mandate_id = str(uuid.uuid5(MANDATE_NAMESPACE, f"{tenant_id}/number/{number}"))
        await repo.of(uow).add_if_number_unseen(model.new_from_feed(entry.messages[0], mandate_id, tenant_id, now))
        await unclaimed.of(uow).decide(tenant_id, number, unclaimed.ADOPTED, now, mandate_id)
        m = await repo.of(uow).get_by_number(tenant_id, number, lock=True)
        assert m is not None
        for message in entry.messages:
            m = await _apply(uow, m, message, now, correlation_id=correlation_id)
        log.info("mandate.unclaimed_adopted", mandate_number=number, messages=len(entry.messages))
    m = await repo.of(uow).get_by_number(tenant_id, number)
    if m is None:
        raise NotFound(number)
    await uow.commit()
    return m


async def ignore_unclaimed(uow: UnitOfWork, tenant_id: str, number: str) -> unclaimed.Unclaimed:
    """The operator ignores it: off the open list, nothing published, later feed messages for it
    are kept with it and change nothing. An adopted mandate cannot be ignored."""
    entry = await unclaimed.of(uow).get(tenant_id, number, lock=True)
    if entry is None:
        raise NotFound(number)
    if entry.status == unclaimed.ADOPTED:
        raise AlreadyAdopted(number)
    if entry.status == unclaimed.OPEN:
        await unclaimed.of(uow).decide(tenant_id, number, unclaimed.IGNORED, utcnow())
        log.info("mandate.unclaimed_ignored", mandate_number=number)
    await uow.commit()
    found = await unclaimed.of(uow).get(tenant_id, number)
    assert found is not None
    return found


async def record_command_failure(
    uow: UnitOfWork, envelope: Envelope, command: str, mandate_number: str, code: str, message: str
) -> None:
    if envelope.tenant_id is None:
        raise ValueError("twikey.command.failed without tenant_id")
    m = await repo.of(uow).get_by_number(str(envelope.tenant_id), mandate_number, lock=True)
    if m is None:
        log.warning("mandate.command_failed_unknown_mandate", mandate_number=mandate_number, command=command)
        return
    outcome = model.command_failed(m, command, code, message, utcnow())
    await repo.of(uow).save(outcome.mandate)
    await emit_outcome(uow, outcome, cause=envelope)


async def expire_unsigned(uow: UnitOfWork, now: datetime, after: timedelta, limit: int = 500) -> int:
    """Expire invites older than ``after`` (claimed SKIP LOCKED: safe with several workers)."""
    expired = 0
    for m in await repo.of(uow).claim_prepared_before(now - after, limit):
        outcome = model.expire_if_unsigned(m, now, after)
        if outcome.event is None:
            continue
        await repo.of(uow).save(outcome.mandate)
        await emit_outcome(uow, outcome)
        expired += 1
    return expired
