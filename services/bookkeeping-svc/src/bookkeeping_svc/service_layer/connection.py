"""A tenant's Twinfield connection: settings, the OAuth connect flow, status.

Connect flow: ``start_connect`` stores a single-use state (random id, tenant, nonce, expiry) and
returns Twinfield's authorize URL with ``state = <id>.<HMAC(id)>``; the operator consents at
Twinfield, which sends the browser to our callback with ``code`` and ``state``;
``complete_connect`` checks the signature, takes the stored state once (which names the tenant),
exchanges the code, validates the access token (cluster URL, organisation) and stores the
refresh token encrypted. Reconnecting resumes bookings paused on lost consent.

No PKCE: Twinfield's login server has IdentityServer3's endpoints, and IdentityServer3 takes PKCE
only from clients registered for a proof-key flow, which Twinfield does not document; it refuses a
``code_verifier`` from a plain code-flow client with ``invalid_grant``. The client secret at the
token endpoint and the signed single-use state bind the code to us
(docs/reference/twinfield-api.md §1.1, "PKCE").
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from bookkeeping_svc.adapters.orm import booking_conflicts, bookings, connections, oauth_states
from bookkeeping_svc.adapters.twinfield.client import TokenSet
from bookkeeping_svc.adapters.twinfield.errors import TwinfieldError, Unavailable
from bookkeeping_svc.domain.booking import TABS, Status
from bookkeeping_svc.service_layer.booking import bulk
from bookkeeping_svc.service_layer.gateway import Gateway
from bookkeeping_svc.settings import Settings
from koppel_shared import errors
from koppel_shared.db import UnitOfWork
from koppel_shared.logging import get_logger
from koppel_shared.service import Runtime

log = get_logger(__name__)

DEFAULT_CROSS_ACCOUNTS = {"direct_debit": "1105", "paylink": "1110"}


@dataclass(frozen=True)
class ConnectionSettings:
    office: str | None
    debtor_account: str
    cross_accounts: dict[str, str]
    memo_daybook: str
    freetext_field: int | None


async def _row(uow: UnitOfWork, tenant_id: uuid.UUID) -> Any:
    return (await uow.session.execute(sa.select(connections).where(connections.c.tenant_id == tenant_id))).first()


async def configure(uow: UnitOfWork, tenant_id: uuid.UUID, wanted: ConnectionSettings) -> None:
    values = {
        "office": wanted.office,
        "debtor_account": wanted.debtor_account,
        "cross_accounts": wanted.cross_accounts,
        "memo_daybook": wanted.memo_daybook,
        "freetext_field": wanted.freetext_field,
    }
    stmt = insert(connections).values(tenant_id=tenant_id, status="not_connected", **values)
    await uow.session.execute(
        stmt.on_conflict_do_update(
            index_elements=[connections.c.tenant_id], set_={**values, "updated_at": sa.func.now()}
        )
    )


async def ensure_row(uow: UnitOfWork, tenant_id: uuid.UUID) -> None:
    await uow.session.execute(
        insert(connections)
        .values(tenant_id=tenant_id, status="not_connected", cross_accounts=DEFAULT_CROSS_ACCOUNTS)
        .on_conflict_do_nothing()
    )


def _sign(settings: Settings, state_id: str) -> str:
    key = settings.derived_key("twinfield-oauth-state")
    return hmac.new(key, f"twinfield-oauth:{state_id}".encode(), hashlib.sha256).hexdigest()[:32]


async def start_connect(uow: UnitOfWork, gw: Gateway, settings: Settings, tenant_id: uuid.UUID) -> tuple[str, datetime]:
    await ensure_row(uow, tenant_id)
    state_id = secrets.token_urlsafe(24)
    nonce = secrets.token_urlsafe(16)
    expires_at = datetime.now(UTC) + timedelta(seconds=settings.oauth_state_ttl_seconds)
    await uow.session.execute(
        sa.insert(oauth_states).values(id=state_id, tenant_id=tenant_id, nonce=nonce, expires_at=expires_at)
    )
    state = f"{state_id}.{_sign(settings, state_id)}"
    url = gw.oauth.authorize_url(settings.twinfield_redirect_uri, settings.twinfield_scopes, state, nonce)
    return url, expires_at


async def take_state(uow: UnitOfWork, settings: Settings, state: str) -> uuid.UUID:
    """The tenant a callback belongs to; the state works once and only before it expires."""
    state_id, _, signature = state.partition(".")
    if not state_id or not hmac.compare_digest(signature, _sign(settings, state_id)):
        raise errors.Malformed("invalid_oauth_state", "the state parameter is not one we issued")
    row = (
        await uow.session.execute(
            sa.update(oauth_states)
            .where(
                oauth_states.c.id == state_id,
                oauth_states.c.used_at.is_(None),
                oauth_states.c.expires_at > sa.func.now(),
            )
            .values(used_at=sa.func.now())
            .returning(oauth_states.c.tenant_id)
        )
    ).first()
    if row is None:
        raise errors.Malformed("invalid_oauth_state", "the connect link was already used or has expired; start again")
    return uuid.UUID(str(row.tenant_id))


async def store_tokens(runtime: Runtime, gw: Gateway, uow: UnitOfWork, tenant_id: uuid.UUID, tokens: TokenSet) -> None:
    if not tokens.refresh_token:
        raise errors.UpstreamFailed(
            "twinfield_no_refresh_token", "Twinfield returned no refresh token (scope offline_access)"
        )
    info = await gw.oauth.validate(tokens.access_token)
    await ensure_row(uow, tenant_id)
    values = {
        "status": "connected",
        "status_reason": None,
        "refresh_token": runtime.secrets.encrypt(tokens.refresh_token),
        "access_token": runtime.secrets.encrypt(tokens.access_token),
        "access_expires_at": datetime.now(UTC) + timedelta(seconds=tokens.expires_in),
        "cluster_url": info.cluster_url,
        "organisation": info.organisation,
        "connected_at": sa.func.now(),
        "updated_at": sa.func.now(),
    }
    await uow.session.execute(sa.update(connections).where(connections.c.tenant_id == tenant_id).values(**values))
    resumed = await bulk.resume_all(uow.session, tenant_id, datetime.now(UTC))
    gw.forget(tenant_id)
    log.info("twinfield.connected", tenant_id=str(tenant_id), organisation=info.organisation, resumed=resumed)


async def complete_connect(runtime: Runtime, gw: Gateway, settings: Settings, code: str, state: str) -> uuid.UUID:
    async with runtime.uow() as uow:
        tenant_id = await take_state(uow, settings, state)
        await uow.commit()  # the state is spent whatever happens next
    try:
        tokens = await gw.oauth.exchange_code(code, settings.twinfield_redirect_uri)
    except Unavailable as exc:
        raise errors.Unavailable("twinfield_unavailable", f"{exc}; start the connection again later") from exc
    except TwinfieldError as exc:
        detail = f"Twinfield refused the authorization code: {exc}"
        raise errors.UpstreamFailed("twinfield_code_exchange_failed", detail) from exc
    async with runtime.uow() as uow:
        await store_tokens(runtime, gw, uow, tenant_id, tokens)
        await uow.commit()
    return tenant_id


async def connect_with_refresh_token(runtime: Runtime, gw: Gateway, tenant_id: uuid.UUID, refresh_token: str) -> None:
    try:
        tokens = await gw.oauth.refresh(refresh_token)
    except Unavailable as exc:
        raise errors.Unavailable("twinfield_unavailable", f"{exc}; try again later") from exc
    except TwinfieldError as exc:
        raise errors.Invalid("twinfield_refresh_token_refused", f"Twinfield refused the refresh token: {exc}") from exc
    if not tokens.refresh_token:
        tokens = TokenSet(tokens.access_token, tokens.expires_in, refresh_token)
    async with runtime.uow() as uow:
        await store_tokens(runtime, gw, uow, tenant_id, tokens)
        await uow.commit()


async def status(uow: UnitOfWork, tenant_id: uuid.UUID) -> dict[str, Any]:
    row = await _row(uow, tenant_id)
    counts_rows = await uow.session.execute(
        sa.select(bookings.c.status, sa.func.count())
        .where(bookings.c.tenant_id == tenant_id)
        .group_by(bookings.c.status)
    )
    counts = {str(s): int(n) for s, n in counts_rows}
    tabs = {tab: sum(counts.get(str(s), 0) for s in members) for tab, members in TABS.items()}
    conflicts = (
        await uow.session.execute(
            sa.select(sa.func.count()).where(
                booking_conflicts.c.tenant_id == tenant_id, booking_conflicts.c.status == "open"
            )
        )
    ).scalar_one()
    summary = {"by_status": counts, "tabs": tabs, "paused": counts.get(Status.PAUSED, 0), "conflicts": conflicts}
    if row is None:
        return {
            "status": "not_connected",
            "reason": "no Twinfield connection yet: PUT /v1/twinfield/connection, then POST /v1/twinfield/connect",
            "consent_lost": False,
            "reconnect_required": True,
            "cluster_url": None,
            "office": None,
            "organisation": None,
            "debtor_account": "1300",
            "cross_accounts": DEFAULT_CROSS_ACCOUNTS,
            "memo_daybook": "MEMO",
            "freetext_field": None,
            "connected_at": None,
            "bookings": summary,
        }
    return {
        "status": row.status,
        "reason": row.status_reason,
        "consent_lost": row.status == "consent_lost",
        "reconnect_required": row.status != "connected",
        "cluster_url": row.cluster_url,
        "office": row.office,
        "organisation": row.organisation,
        "debtor_account": row.debtor_account,
        "cross_accounts": row.cross_accounts,
        "memo_daybook": row.memo_daybook,
        "freetext_field": row.freetext_field,
        "connected_at": row.connected_at,
        "bookings": summary,
    }
