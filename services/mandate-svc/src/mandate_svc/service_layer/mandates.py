"""Use cases of mandate-svc: prepare a mandate (with sync-svc's invite), the ERP's commands, and
the lifecycle driven by sync-svc's events. Each takes a unit of work (or a factory of them, when
an outside call must happen between two transactions) and plain values."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
from koppel_shared.logging import get_logger
from mandate_svc.adapters import repository as repo
from mandate_svc.adapters.sync_client import InviteRefused, InviteRequest, SyncClient, SyncUnavailable
from mandate_svc.domain import model
from mandate_svc.domain.model import FeedMessage, Mandate, Status
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
        scheme=m.scheme,
        delivery=request.delivery,
        customer={
            "customer_number": c.number,
            "name": c.name,
            "company_name": c.company_name,
            "email": c.email,
            "mobile": c.mobile,
            "iban": c.iban,
            "bic": c.bic,
            "language": c.language,
            "address": c.address,
            "zip": c.zip,
            "city": c.city,
            "country": c.country,
        },
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
) -> tuple[Mandate, bool]:
    """Check the preconditions, store the mandate as *requested*, have sync-svc invite it at Twikey
    (our mandate id is the reference), and store it as *prepared* with the mandate number and sign
    URL, publishing ``mandate.prepared``. Returns (mandate, replayed).

    With an ``Idempotency-Key`` the mandate id is derived from the key: the same key and body give
    the same mandate (a mandate still *requested* because Twikey was unreachable is invited again,
    with the same reference); the same key with another body is an ``IdempotencyConflict``.
    Without a key nothing stays behind when the invite fails."""
    request = check_new_mandate(request)  # raises PreconditionFailed: nothing stored or sent
    now = utcnow()
    mandate_id = (
        str(uuid.uuid5(MANDATE_NAMESPACE, f"{tenant_id}/key/{idempotency_key}"))
        if idempotency_key
        else str(uuid.uuid4())
    )

    async with new_uow() as uow:
        if idempotency_key:
            claimed = await repo.claim_idempotency_key(
                uow.session, tenant_id, idempotency_key, body_hash, mandate_id, now
            )
            if claimed is not None:
                first_hash, first_id = claimed
                if first_hash != body_hash:
                    raise IdempotencyConflict(idempotency_key)
                existing = await repo.get(uow.session, tenant_id, first_id)
                if existing is None:
                    raise NotFound(first_id)
                if existing.status != Status.REQUESTED:
                    return existing, True
                mandate = existing
            else:
                mandate = _new_mandate(tenant_id, mandate_id, request, now)
                await repo.add(uow.session, mandate)
        else:
            mandate = _new_mandate(tenant_id, mandate_id, request, now)
            await repo.add(uow.session, mandate)
        await uow.commit()

    try:
        result = await sync.invite(tenant_id, _invite_request(mandate, request))
    except InviteRefused as refused:
        await _forget_requested(new_uow, tenant_id, mandate.id)
        raise InviteRefusedByTwikey(refused) from refused
    except SyncUnavailable as exc:
        if not idempotency_key:
            await _forget_requested(new_uow, tenant_id, mandate.id)
        raise InviteUnavailable(str(exc), mandate.id if idempotency_key else None) from exc

    async with new_uow() as uow:
        current = await repo.get(uow.session, tenant_id, mandate.id, lock=True)
        if current is None:
            raise NotFound(mandate.id)
        outcome = model.mark_prepared(current, result.mandate_number, result.sign_url, utcnow())
        if outcome.mandate is not current:
            await repo.save(uow.session, outcome.mandate)
            await emit_outcome(uow, outcome, correlation_id=correlation_id)
        await uow.commit()
    return outcome.mandate, False


async def _forget_requested(new_uow: Callable[[], UnitOfWork], tenant_id: str, mandate_id: str) -> None:
    async with new_uow() as uow:
        current = await repo.get(uow.session, tenant_id, mandate_id, lock=True)
        if current is not None and current.status == Status.REQUESTED:
            await repo.remove(uow.session, tenant_id, mandate_id)
            await uow.commit()


async def get_mandate(uow: UnitOfWork, tenant_id: str, mandate_id: str) -> Mandate:
    m = await repo.get(uow.session, tenant_id, mandate_id)
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
    m = await repo.get(uow.session, tenant_id, mandate_id, lock=True)
    if m is None:
        raise NotFound(mandate_id)
    outcome = model.request_action(m, action, reason, utcnow())
    if outcome.changed:
        await repo.save(uow.session, outcome.mandate)
    await emit_outcome(uow, outcome, correlation_id=correlation_id)
    await uow.commit()
    return outcome.mandate


async def customer_mandates(uow: UnitOfWork, tenant_id: str, customer_number: str) -> list[Mandate]:
    return await repo.for_customer(uow.session, tenant_id, customer_number)


def collectable_mandate(mandates: list[Mandate]) -> Mandate | None:
    """The mandate to collect on now: an active one, most recently signed first."""
    active = [m for m in mandates if m.collectable]
    epoch = datetime.min.replace(tzinfo=UTC)
    active.sort(key=lambda m: (m.signed_at or epoch, m.created_at), reverse=True)
    return active[0] if active else None


# --- sync-svc's events -------------------------------------------------------------------------


async def apply_feed_message(uow: UnitOfWork, envelope: Envelope, message: FeedMessage) -> Mandate:
    """One Twikey mandate-feed message. A mandate we have never seen is created (its id derived
    from the mandate number, so a rebuilt projection gets the same ids)."""
    if envelope.tenant_id is None:
        raise ValueError("twikey.mandate.changed without tenant_id")
    tenant_id = str(envelope.tenant_id)
    now = utcnow()
    m = await repo.get_by_number(uow.session, tenant_id, message.mandate_number, lock=True)
    if m is None:
        mandate_id = str(uuid.uuid5(MANDATE_NAMESPACE, f"{tenant_id}/number/{message.mandate_number}"))
        await repo.add_if_number_unseen(uow.session, model.new_from_feed(message, mandate_id, tenant_id, now))
        m = await repo.get_by_number(uow.session, tenant_id, message.mandate_number, lock=True)
        assert m is not None
        log.info("mandate.seen_first_in_feed", mandate_number=message.mandate_number, change=message.change)
    outcome = model.apply_feed(m, message, now)
    if outcome.changed:
        await repo.save(uow.session, outcome.mandate)
        await emit_outcome(uow, outcome, cause=envelope)
    else:
        log.info("mandate.feed_message_no_change", mandate_number=message.mandate_number, seq=message.feed_seq)
    return outcome.mandate


async def record_command_failure(
    uow: UnitOfWork, envelope: Envelope, command: str, mandate_number: str, code: str, message: str
) -> None:
    if envelope.tenant_id is None:
        raise ValueError("twikey.command.failed without tenant_id")
    m = await repo.get_by_number(uow.session, str(envelope.tenant_id), mandate_number, lock=True)
    if m is None:
        log.warning("mandate.command_failed_unknown_mandate", mandate_number=mandate_number, command=command)
        return
    outcome = model.command_failed(m, command, code, message, utcnow())
    await repo.save(uow.session, outcome.mandate)
    await emit_outcome(uow, outcome, cause=envelope)


async def expire_unsigned(uow: UnitOfWork, now: datetime, after: timedelta, limit: int = 500) -> int:
    """Expire invites older than ``after`` (claimed SKIP LOCKED: safe with several workers)."""
    expired = 0
    for m in await repo.claim_prepared_before(uow.session, now - after, limit):
        outcome = model.expire_if_unsigned(m, now, after)
        if outcome.event is None:
            continue
        await repo.save(uow.session, outcome.mandate)
        await emit_outcome(uow, outcome)
        expired += 1
    return expired
