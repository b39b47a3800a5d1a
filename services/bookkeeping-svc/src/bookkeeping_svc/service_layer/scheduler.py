"""The booking scheduler: a worker loop that gives every tenant with due work a turn, and in a
turn runs the booking steps (service_layer/booking/) within the fair-use credits.

One writer per organisation: a tenant's turn runs under a PostgreSQL advisory lock on its
Twinfield organisation, so with several workers exactly one talks to an organisation at a time.
A turn repeats the steps — post (look up, then post), match, reverse, update customers — while
they find work, at most ``MAX_BATCHES_PER_TURN`` times. So 25 payments of 25 invoices cost
25 (look-ups) + 3 (post) + 3 (match) = 31 credits.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import sqlalchemy as sa

from bookkeeping_svc.adapters.orm import bookings, connections, customer_updates
from bookkeeping_svc.adapters.twinfield.errors import ConsentLost, TwinfieldError
from bookkeeping_svc.domain.booking import ACTIVE
from bookkeeping_svc.service_layer.booking.customers import update_customers
from bookkeeping_svc.service_layer.booking.match import match_payments
from bookkeeping_svc.service_layer.booking.post import post_payments
from bookkeeping_svc.service_layer.booking.reverse import reverse_payments
from bookkeeping_svc.service_layer.booking.work import Work
from bookkeeping_svc.service_layer.gateway import Gateway, NotConnected
from bookkeeping_svc.service_layer.payments import WAKE_CHANNEL
from bookkeeping_svc.settings import Settings
from koppel_shared.db import asyncpg_dsn
from koppel_shared.logging import get_logger, log_context
from koppel_shared.loops import woken
from koppel_shared.service import Runtime

log = get_logger(__name__)

MAX_BATCHES_PER_TURN = 20
TENANTS_IN_PARALLEL = 4
STEPS = (post_payments, match_payments, reverse_payments, update_customers)


class Scheduler:
    def __init__(self, runtime: Runtime, gateway: Gateway, settings: Settings) -> None:
        self.runtime = runtime
        self.gw = gateway
        self.settings = settings
        self.work = Work(runtime, gateway, settings)
        self._backoff: dict[uuid.UUID, float] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """A turn for every tenant with due work, each on its own (a tenant never waits for
        another's long turn), at most ``TENANTS_IN_PARALLEL`` at once. Between looks, sleep until
        a commit makes a booking due (``NOTIFY``), a turn ends, or the poll interval passes (for
        retries whose time has come)."""
        wake = asyncio.Event()
        gate = asyncio.Semaphore(TENANTS_IN_PARALLEL)
        turns: dict[uuid.UUID, asyncio.Task[None]] = {}

        async def turn(tenant_id: uuid.UUID) -> None:
            worked = False
            try:
                async with gate:
                    worked = await self.tenant_turn(tenant_id)
            except Exception as exc:  # a broken turn must not end the loop
                log.exception("booker.turn_failed", tenant_id=str(tenant_id), error=repr(exc))
            finally:
                turns.pop(tenant_id, None)
                if worked:  # there may be more (a turn stops after MAX_BATCHES_PER_TURN)
                    wake.set()

        async def look() -> None:
            now = time.monotonic()
            for tenant_id in await self._due_tenants():
                if tenant_id not in turns and self._backoff.get(tenant_id, 0.0) <= now:
                    turns[tenant_id] = asyncio.create_task(turn(tenant_id))

        try:
            # The database away: the look fails and is tried again after a backoff.
            await woken(
                "booker.look",
                WAKE_CHANNEL,
                look,
                stop,
                dsn=asyncpg_dsn(self.settings.database_url),
                poll=self.settings.booker_poll_seconds,
                wake=wake,
            )
        finally:
            for task in turns.values():
                task.cancel()
            await asyncio.gather(*turns.values(), return_exceptions=True)

    async def _due_tenants(self) -> list[uuid.UUID]:
        connected = sa.select(connections.c.tenant_id).where(connections.c.status == "connected")
        due_bookings = sa.select(bookings.c.tenant_id).where(
            bookings.c.status.in_(ACTIVE),
            bookings.c.next_attempt_at <= sa.func.now(),
            bookings.c.tenant_id.in_(connected),
        )
        due_updates = sa.select(customer_updates.c.tenant_id).where(
            customer_updates.c.status == "open",
            customer_updates.c.next_attempt_at <= sa.func.now(),
            customer_updates.c.tenant_id.in_(connected),
        )
        async with self.runtime.engine.connect() as conn:
            rows = await conn.execute(sa.union(due_bookings, due_updates))
            return [uuid.UUID(str(r[0])) for r in rows]

    async def tenant_turn(self, tenant_id: uuid.UUID) -> bool:
        """Work off a tenant's due bookings while holding its organisation's writer lock."""
        async with self.runtime.engine.connect() as conn:
            org = (
                await conn.execute(
                    sa.select(
                        sa.func.coalesce(connections.c.organisation, sa.cast(connections.c.tenant_id, sa.Text))
                    ).where(connections.c.tenant_id == tenant_id)
                )
            ).scalar_one_or_none()
            key = sa.func.hashtext(f"koppel-twinfield-writer:{org or tenant_id}")
            if not (await conn.execute(sa.select(sa.func.pg_try_advisory_lock(key)))).scalar():
                return False  # another worker writes to this organisation now
            await conn.commit()
            try:
                with log_context(tenant_id=tenant_id):
                    return await self._turn(tenant_id)
            finally:
                await conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                await conn.commit()

    async def _turn(self, tenant_id: uuid.UUID) -> bool:
        try:
            access = await self.gw.access(tenant_id)
        except ConsentLost:
            return True
        except NotConnected:
            return False
        except TwinfieldError as exc:
            log.warning("booker.no_access", error=str(exc))
            self._backoff[tenant_id] = time.monotonic() + self.settings.transient_backoff_seconds
            return False
        worked = False
        try:
            for _ in range(MAX_BATCHES_PER_TURN):
                step = False
                for run_step in STEPS:
                    access, did = await run_step(self.work, access)
                    step |= did
                worked |= step
                if not step:
                    break
        except ConsentLost:
            return True
        except NotConnected:
            return worked
        return worked


async def sweep(runtime: Runtime) -> int:
    """The nightly sweep: everything open or failed gets another go now."""
    from bookkeeping_svc.service_layer.intake import retry_all

    async with runtime.uow() as uow:
        count = await retry_all(uow)
        await uow.commit()
    log.info("booker.sweep", requeued=count)
    return count
