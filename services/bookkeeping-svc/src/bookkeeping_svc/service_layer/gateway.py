"""The per-process Twinfield gateway: HTTP clients, access tokens and the shared credit budget.

Access tokens are single-flight across workers: the tenant's ``twinfield_connections`` row is
locked (``SELECT … FOR UPDATE``) while one worker refreshes, and the others then find the fresh
token in the row instead of refreshing again; inside one process an ``asyncio.Lock`` per tenant
keeps the database out of it. The access token is cached (encrypted in the row, plain in memory)
with its expiry and cluster URL. A refused refresh (``invalid_grant``) marks the connection
``consent_lost`` and pauses the tenant's bookings in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa
from lxml import etree
from sqlalchemy.ext.asyncio import AsyncSession

from bookkeeping_svc.adapters.credits import CreditBudget, Limits
from bookkeeping_svc.adapters.orm import bookings, connections
from bookkeeping_svc.adapters.twinfield.client import OAuthClient, ProcessXml, cost_of
from bookkeeping_svc.adapters.twinfield.errors import ConsentLost, RateLimited, TokenRejected, TwinfieldError
from bookkeeping_svc.domain.booking import PAUSABLE, Accounts, Status, resumed_status
from bookkeeping_svc.domain.errors import hint_for
from bookkeeping_svc.settings import Settings
from koppel_shared.http import make_client
from koppel_shared.logging import get_logger
from koppel_shared.service import Runtime

log = get_logger(__name__)


class NotConnected(TwinfieldError):
    """The tenant has no usable Twinfield connection (never connected, or consent lost)."""


@dataclass(frozen=True)
class Access:
    tenant_id: uuid.UUID
    token: str
    expires_at: datetime
    cluster_url: str
    office: str
    organisation: str
    accounts: Accounts

    @property
    def budget(self) -> str:
        """Whose credits a request spends: Twinfield counts per organisation (by its office when
        the token did not name one)."""
        return self.organisation or self.office


def accounts_of(row: sa.Row) -> Accounts:
    return Accounts(
        debtor_account=row.debtor_account,
        cross_accounts=dict(row.cross_accounts or {}),
        memo_daybook=row.memo_daybook,
        freetext_field=row.freetext_field,
    )


async def pause_bookings(session: AsyncSession, tenant_id: uuid.UUID, reason: str) -> int:
    """``Booking.pause`` for all of a tenant's bookings at once, in one statement."""
    result = await session.execute(
        sa.update(bookings)
        .where(
            bookings.c.tenant_id == tenant_id,
            bookings.c.status.in_(PAUSABLE),
        )
        .values(
            # What it was doing stays visible: memo_number / reverse_requested tell the booker
            # where to pick up when the tenant reconnects.
            status=Status.PAUSED,
            paused_from=bookings.c.status,
            error_code="auth_lost",
            error_message=reason,
            hint=hint_for("auth_lost"),
            updated_at=sa.func.now(),
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def resume_bookings(session: AsyncSession, tenant_id: uuid.UUID) -> int:
    """``Booking.resume`` for all of a tenant's bookings at once: paused bookings (and those that
    failed on lost consent) go back to the state they were paused in: a posted MEMO is matched, an
    unknown outcome is looked up, a reversal goes on."""
    values = {
        "status": sa.func.coalesce(
            bookings.c.paused_from,
            sa.case((bookings.c.memo_number.is_not(None), resumed_status(True)), else_=resumed_status(False)),
        ),
        "paused_from": None,
        "error_code": None,
        "error_message": None,
        "hint": None,
        "transient_failures": 0,
        "next_attempt_at": sa.func.now(),
        "updated_at": sa.func.now(),
    }
    result = await session.execute(
        sa.update(bookings)
        .where(
            bookings.c.tenant_id == tenant_id,
            sa.or_(
                bookings.c.status == Status.PAUSED,
                sa.and_(bookings.c.status == Status.ERROR, bookings.c.error_code == "auth_lost"),
            ),
        )
        .values(**values)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass
class Prepaid:
    """Credits reserved for a step's requests; ``left`` is what it has not spent."""

    left: int

    def spend(self, cost: int) -> None:
        if cost > self.left:
            raise ValueError(f"{cost} credits spent of {self.left} reserved")
        self.left -= cost


class Gateway:
    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.http: httpx.AsyncClient = make_client(timeout=settings.twinfield_timeout_seconds)
        self.oauth = OAuthClient(
            self.http,
            settings.twinfield_login_url,
            settings.twinfield_client_id,
            settings.twinfield_client_secret.get_secret_value(),
        )
        self.xml = ProcessXml(self.http)
        self._cache: dict[uuid.UUID, Access] = {}
        self._locks: defaultdict[uuid.UUID, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.credits = CreditBudget(
            runtime.engine,
            settings.twinfield_client_id,
            Limits(
                settings.twinfield_client_credits_per_minute,
                settings.twinfield_credits_per_minute,
                settings.twinfield_credit_burst,
                settings.twinfield_credit_window_seconds,
                settings.twinfield_credit_headroom,
            ),
        )
        self.refreshes = 0  # counted for tests and metrics

    async def close(self) -> None:
        await self.http.aclose()

    def forget(self, tenant_id: uuid.UUID) -> None:
        self._cache.pop(tenant_id, None)

    def _fresh(self, access: Access | None, stale: str | None) -> bool:
        if access is None or access.token == stale:
            return False
        margin = timedelta(seconds=self.settings.token_refresh_margin_seconds)
        return access.expires_at - margin > datetime.now(UTC)

    async def access(self, tenant_id: uuid.UUID, stale: str | None = None, office_required: bool = True) -> Access:
        """A valid access token for the tenant; ``stale`` names a token Twinfield refused. Only
        the settings form's look-ups (which offices, which accounts) pass ``office_required=False``:
        they run between consent and choosing an office (``office`` is then "")."""
        cached = self._cache.get(tenant_id)
        if self._fresh(cached, stale) and (cached.office or not office_required):  # type: ignore[union-attr]
            assert cached is not None
            return cached
        async with self._locks[tenant_id]:
            cached = self._cache.get(tenant_id)
            if self._fresh(cached, stale) and (cached.office or not office_required):  # type: ignore[union-attr]
                assert cached is not None
                return cached
            access = await self._refresh_single_flight(tenant_id, stale, office_required)
            self._cache[tenant_id] = access
            return access

    async def _refresh_single_flight(
        self, tenant_id: uuid.UUID, stale: str | None, office_required: bool = True
    ) -> Access:
        secrets = self.runtime.secrets
        async with self.runtime.uow() as uow:
            row = (
                await uow.session.execute(
                    sa.select(connections).where(connections.c.tenant_id == tenant_id).with_for_update()
                )
            ).first()
            if row is None or row.status != "connected" or not row.refresh_token:
                raise NotConnected(f"tenant {tenant_id} has no usable Twinfield connection")
            if office_required and not row.office:
                raise NotConnected(f"tenant {tenant_id} has chosen no Twinfield office yet")
            if row.access_token and row.access_expires_at and row.cluster_url:
                stored = Access(
                    tenant_id,
                    secrets.decrypt(row.access_token),
                    row.access_expires_at,
                    row.cluster_url,
                    row.office or "",
                    row.organisation or "",
                    accounts_of(row),
                )
                if self._fresh(stored, stale):
                    return stored  # another worker refreshed while we waited for the lock
            try:
                tokens = await self.oauth.refresh(secrets.decrypt(row.refresh_token))
            except ConsentLost as exc:
                await mark_consent_lost(uow.session, tenant_id, str(exc))
                await uow.commit()
                self._cache.pop(tenant_id, None)
                log.warning("twinfield.consent_lost", tenant_id=str(tenant_id), reason=str(exc))
                raise
            info = await self.oauth.validate(tokens.access_token)
            self.refreshes += 1
            expires_at = datetime.now(UTC) + timedelta(seconds=tokens.expires_in)
            values: dict[str, object] = {
                "access_token": secrets.encrypt(tokens.access_token),
                "access_expires_at": expires_at,
                "cluster_url": info.cluster_url,
                "organisation": info.organisation or row.organisation,
                "updated_at": sa.func.now(),
            }
            if tokens.refresh_token:
                values["refresh_token"] = secrets.encrypt(tokens.refresh_token)
            await uow.session.execute(
                sa.update(connections).where(connections.c.tenant_id == tenant_id).values(**values)
            )
            await uow.commit()
            log.info("twinfield.token_refreshed", tenant_id=str(tenant_id), cluster=info.cluster_url)
            return Access(
                tenant_id,
                tokens.access_token,
                expires_at,
                info.cluster_url,
                row.office or "",
                info.organisation or row.organisation or "",
                accounts_of(row),
            )

    async def reserve(self, access: Access, cost: int) -> None:
        """Take ``cost`` credits for requests about to be sent, waiting until the budget allows them."""
        wait = await self.credits.reserve(access.budget, cost)
        if wait > 0:
            await asyncio.sleep(wait)

    async def refund(self, access: Access, cost: int) -> None:
        """Give back credits reserved for a request that was not sent or not charged (429)."""
        await self.credits.refund(access.budget, cost)

    @contextlib.asynccontextmanager
    async def prepaid(self, access: Access, cost: int) -> AsyncIterator[Prepaid]:
        """Credits for the requests of one step, taken before the step chooses its bookings (while
        the budget makes it wait, more payments arrive and join the batch). Whatever the step did
        not spend (nothing to do, a look-up that failed) is given back when it ends: the one place
        where a step's credits are reserved and refunded."""
        await self.reserve(access, cost)
        credits = Prepaid(cost)
        try:
            yield credits
        finally:
            if credits.left:
                await self.refund(access, credits.left)

    async def call(
        self, access: Access, request_xml: str, prepaid: Prepaid | None = None, company: str | None = None
    ) -> tuple[Access, etree._Element]:
        """One ProcessXml call within the fair-use budget: spends ``prepaid`` credits, or waits
        for its own, honours 429 ``Retry-After`` (the request was not processed and not charged, so
        it is sent again on the same credits), refreshes the token once on fault 354. Returns the
        access used (it may have been refreshed). ``company`` sends another office than the
        tenant's as the header's ``CompanyCode`` ("" sends none: the offices list)."""
        cost = cost_of(request_xml)
        if prepaid is not None:
            prepaid.spend(cost)
        else:
            await self.reserve(access, cost)
        waited = 0.0
        refreshed = False
        while True:
            try:
                office = access.office if company is None else company
                root = await self.xml.call(access.cluster_url, access.token, office, request_xml)
                return access, root
            except RateLimited as exc:
                log.info("twinfield.rate_limited", retry_after=exc.retry_after, organisation=access.organisation)
                waited += exc.retry_after
                if waited > self.settings.max_rate_limit_wait_seconds:
                    await self.refund(access, cost)
                    raise
                await self.credits.block(access.budget, exc.retry_after)
                await asyncio.sleep(exc.retry_after)
            except TokenRejected:
                if refreshed:
                    raise
                refreshed = True
                access = await self.access(access.tenant_id, stale=access.token, office_required=company is None)


async def mark_consent_lost(session: AsyncSession, tenant_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        sa.update(connections)
        .where(connections.c.tenant_id == tenant_id)
        .values(
            status="consent_lost",
            status_reason=f"Twinfield refused the refresh token ({reason}); reconnect to resume bookings.",
            access_token=None,
            access_expires_at=None,
            updated_at=sa.func.now(),
        )
    )
    await pause_bookings(session, tenant_id, reason)


def gateway(runtime: Runtime) -> Gateway:
    """The process's gateway, made on first use and closed with the runtime."""
    existing = runtime.extras.get("twinfield")
    if isinstance(existing, Gateway):
        return existing
    settings = runtime.settings
    assert isinstance(settings, Settings)
    made = Gateway(runtime, settings)
    runtime.extras["twinfield"] = made
    runtime.extras.setdefault("closers", []).append(made.close)
    return made
