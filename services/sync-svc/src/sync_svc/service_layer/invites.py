"""Inviting a mandate at Twikey exactly once per mandate number we chose.

The caller (mandate-svc) names the mandate (``mandateNumber`` on ``POST /invite``). Every invite
sent under a number is recorded here before it leaves, so any later attempt for the same number
— a retry of the internal call, a second replica, an ERP retry — knows one may already exist:

- recorded ``done``: Twikey has it; answer from the record, nothing is sent;
- recorded ``sending`` (sent, outcome unknown): look it up (``GET /mandate/detail`` with
  ``force``, which shows prepared mandates); found → adopt it; not found → send again only once
  the first attempt has surely ended (``invite_settle_seconds``), else answer 503;
- recorded ``unsent`` (Twikey refused it, or it never left): send it.

A write whose answer is lost is resolved by this look-up, never by sending it again blindly. Twikey
refuses a mandate number already in use, so even a second send cannot make a second mandate; a
refusal of our own number is looked up too. When the look-up finds the mandate, the sign URL of
the lost answer is not known (Twikey's detail call does not carry it): ``sign_url`` is None.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from koppel_shared.errors import Conflict, Invalid, Unavailable
from koppel_shared.logging import get_logger
from koppel_shared.service import Runtime
from sync_svc.adapters.orm import twikey_invites
from sync_svc.adapters.twikey_client import TwikeyClient, TwikeyError, TwikeyOutcomeUnknown, TwikeyUnavailable
from sync_svc.domain.invite import InviteRequest, invite_form
from sync_svc.settings import Settings

log = get_logger(__name__)

SEND, DONE, LOOK = "send", "done", "look"


@dataclass(frozen=True)
class Claim:
    action: str  # send | done | look
    sign_url: str | None = None
    sent_at: datetime | None = None


def _answer(number: str, sign_url: str | None, key: str | None = None) -> dict[str, Any]:
    return {"mandate_number": number, "sign_url": sign_url, "key": key}


def _unavailable(detail: str) -> Unavailable:
    return Unavailable("twikey_unavailable", detail)


def refused(exc: TwikeyError) -> Invalid:
    return Invalid(f"twikey_{exc.code}", exc.message, twikey_code=exc.code, field=exc.extra, title="Refused by Twikey")


async def _claim(runtime: Runtime, tenant_id: uuid.UUID, request: InviteRequest, number: str) -> Claim:
    """Record this attempt, or learn what an earlier one for the number came to (row-locked, so
    two attempts at once never both send)."""
    now = datetime.now(UTC)
    async with runtime.uow() as uow:
        inserted = await uow.session.scalar(
            insert(twikey_invites)
            .values(
                tenant_id=tenant_id, mandate_number=number, reference=request.reference, status="sending", sent_at=now
            )
            .on_conflict_do_nothing()
            .returning(twikey_invites.c.mandate_number)
        )
        if inserted is not None:
            await uow.commit()
            return Claim(SEND)
        row = (
            await uow.session.execute(
                sa.select(twikey_invites)
                .where(twikey_invites.c.tenant_id == tenant_id, twikey_invites.c.mandate_number == number)
                .with_for_update()
            )
        ).one()
        if row.reference != request.reference:
            raise Conflict("mandate_number_in_use", f"mandate number {number} belongs to another reference")
        if row.status == "done":
            return Claim(DONE, sign_url=row.sign_url)
        if row.status == "unsent":
            await _set(uow.session, tenant_id, number, status="sending", sent_at=now, attempts=row.attempts + 1)
            await uow.commit()
            return Claim(SEND)
        return Claim(LOOK, sent_at=row.sent_at)


async def _set(session: Any, tenant_id: uuid.UUID, number: str, **values: Any) -> None:
    await session.execute(
        sa.update(twikey_invites)
        .where(twikey_invites.c.tenant_id == tenant_id, twikey_invites.c.mandate_number == number)
        .values(updated_at=sa.func.now(), **values)
    )


async def _record(runtime: Runtime, tenant_id: uuid.UUID, number: str, **values: Any) -> None:
    async with runtime.uow() as uow:
        await _set(uow.session, tenant_id, number, **values)
        await uow.commit()


async def _resend_if_settled(runtime: Runtime[Settings], tenant_id: uuid.UUID, number: str, sent_at: datetime) -> bool:
    """Take over an attempt whose outcome stayed unknown and that Twikey does not know, once it has
    surely ended. Only one caller wins (the sent_at it saw must still be there)."""
    settle = timedelta(seconds=runtime.settings.invite_settle_seconds)
    now = datetime.now(UTC)
    if now - sent_at < settle:
        return False
    async with runtime.uow() as uow:
        taken = await uow.session.scalar(
            sa.update(twikey_invites)
            .where(
                twikey_invites.c.tenant_id == tenant_id,
                twikey_invites.c.mandate_number == number,
                twikey_invites.c.status == "sending",
                twikey_invites.c.sent_at == sent_at,
            )
            .values(sent_at=now, attempts=twikey_invites.c.attempts + 1, updated_at=sa.func.now())
            .returning(twikey_invites.c.mandate_number)
        )
        await uow.commit()
    return taken is not None


async def _found(client: TwikeyClient, runtime: Runtime, tenant_id: uuid.UUID, number: str) -> bool:
    """Look the mandate up at Twikey; record it as done when it is there. If Twikey cannot be
    asked, the outcome stays unknown (503; the record stays as it was)."""
    try:
        detail = await client.mandate_detail(number)
    except (TwikeyUnavailable, TwikeyError) as exc:
        raise _unavailable(f"the invite's outcome is unknown and Twikey cannot be asked now: {exc}") from exc
    if detail is None:
        return False
    log.info("mandate.invite_found_by_lookup", tenant_id=str(tenant_id), mandate=number, state=detail.state)
    await _record(runtime, tenant_id, number, status="done")
    return True


async def _send(
    runtime: Runtime, client: TwikeyClient, tenant_id: uuid.UUID, request: InviteRequest, number: str, template: str
) -> dict[str, Any]:
    try:
        answer = await client.invite(invite_form(request, template))
    except TwikeyError as exc:
        # Twikey refuses a number already in use: an earlier attempt may have made it after all.
        if await _found(client, runtime, tenant_id, number):
            return _answer(number, None)
        await _record(runtime, tenant_id, number, status="unsent")
        raise refused(exc) from exc
    except TwikeyOutcomeUnknown as exc:
        log.warning("mandate.invite_outcome_unknown", tenant_id=str(tenant_id), mandate=number, error=str(exc))
        if await _found(client, runtime, tenant_id, number):
            return _answer(number, None)
        if exc.answered:  # Twikey finished with the request and has no such mandate
            await _record(runtime, tenant_id, number, status="unsent")
        raise _unavailable(f"Twikey did not answer the invite; retry later: {exc}") from exc
    except TwikeyUnavailable as exc:  # never reached Twikey
        await _record(runtime, tenant_id, number, status="unsent")
        raise _unavailable(f"Twikey could not be reached: {exc}") from exc
    got = str(answer.get("mndtId") or "")
    if got != number:
        log.warning("mandate.number_not_honoured", tenant_id=str(tenant_id), asked=number, got=got)
    await _record(runtime, tenant_id, number, status="done", sign_url=answer.get("url"))
    return _answer(got or number, answer.get("url"), answer.get("key"))


async def invite_once(
    runtime: Runtime, client: TwikeyClient, tenant_id: uuid.UUID, request: InviteRequest, template: str
) -> dict[str, Any]:
    number = request.mandate_number
    assert number, "invite_once needs a mandate number"
    claim = await _claim(runtime, tenant_id, request, number)
    if claim.action == DONE:
        return _answer(number, claim.sign_url)
    if claim.action == LOOK:
        assert claim.sent_at is not None
        if await _found(client, runtime, tenant_id, number):
            return _answer(number, None)
        if not await _resend_if_settled(runtime, tenant_id, number, claim.sent_at):
            raise _unavailable("an invite for this mandate is under way or its outcome is not known yet; retry later")
    return await _send(runtime, client, tenant_id, request, number, template)
