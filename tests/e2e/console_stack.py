"""The console in front of the five real service APIs, each on its own fresh database and port,
with one tenant's data written straight into those databases (mandates with their events,
invoices and their collections, bookings, a failing ERP endpoint and its deliveries, feed
positions) — as much as a tenant of years has, in seconds. Used by the console's browser test and
by ``bench/console_pages.py``."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from koppel_console.app import build_app
from koppel_console.settings import Settings as ConsoleSettings
from koppel_shared.auth import issue_token
from koppel_shared.migrations import drop_database, ensure_database, migrate
from koppel_shared.service import build_api
from koppel_shared.settings import DEV_ENCRYPTION_KEY
from koppel_shared.testing.fixtures import AMQP_URL, PG_BASE, TEST_SIGNING_KEY, settings_for_test, unique_name
from koppel_shared.testing.serving import Served

SERVICES = ("mandate", "collection", "sync", "bookkeeping", "notify")


def _definition_and_settings(service: str) -> tuple[Any, type[Any]]:
    if service == "mandate":
        from mandate_svc.bootstrap import definition as mandate
        from mandate_svc.settings import Settings as MandateSettings

        return mandate, MandateSettings
    if service == "collection":
        from collection_svc.bootstrap import definition as collection
        from collection_svc.settings import Settings as CollectionSettings

        return collection, CollectionSettings
    if service == "sync":
        from sync_svc.bootstrap import definition as sync
        from sync_svc.settings import Settings as SyncSettings

        return sync, SyncSettings
    if service == "bookkeeping":
        from bookkeeping_svc.bootstrap import definition as bookkeeping
        from bookkeeping_svc.settings import Settings as BookkeepingSettings

        return bookkeeping, BookkeepingSettings
    from notify_svc.bootstrap import definition as notify
    from notify_svc.settings import Settings as NotifySettings

    return notify, NotifySettings


@dataclass
class Stack:
    console: str  # base URL of the console
    token: str  # an operator token of the tenant
    tenant: uuid.UUID
    databases: dict[str, str]
    services: dict[str, str]  # base URL of each service's API
    settings: ConsoleSettings


@contextlib.asynccontextmanager
async def databases(prefix: str) -> AsyncIterator[dict[str, str]]:
    urls = {service: f"{PG_BASE}/{unique_name(service)}" for service in SERVICES}
    try:
        for service, url in urls.items():
            await ensure_database(url)
            await migrate(_definition_and_settings(service)[0].migrations_dir, url)
        yield urls
    finally:
        for url in urls.values():
            await drop_database(url)


@contextlib.contextmanager
def serving(
    urls: dict[str, str], prefix: str, overrides: dict[str, dict[str, Any]] | None = None
) -> Iterator[tuple[str, dict[str, str], ConsoleSettings]]:
    """Every service API and the console, each in its own thread (and event loop) on a free port;
    ``overrides``: settings of a service, by its name."""
    with contextlib.ExitStack() as stack:
        bases = {}
        for service in SERVICES:
            definition, settings_cls = _definition_and_settings(service)
            settings = settings_for_test(settings_cls, urls[service], prefix, **(overrides or {}).get(service, {}))
            bases[service] = stack.enter_context(Served(build_api(definition, settings), lifespan="on")).base
        # dev: the sign-in cookie is not marked Secure, so a browser keeps it over plain http
        console_settings = settings_for_test(
            ConsoleSettings, urls["mandate"], prefix, environment="dev", known_tenants_only=True,
            encryption_keys=DEV_ENCRYPTION_KEY,
            **{f"{service}_url": base for service, base in bases.items()},
        )  # fmt: skip
        console = stack.enter_context(Served(build_app(console_settings), lifespan="on")).base
        yield console, bases, console_settings


@contextlib.asynccontextmanager
async def running(
    invoices: int, prefix: str | None = None, overrides: dict[str, dict[str, Any]] | None = None
) -> AsyncIterator[Stack]:
    prefix = prefix or unique_name("q") + "."
    tenant = uuid.uuid4()
    try:
        async with databases(prefix) as urls:
            await seed(urls, tenant, invoices)
            with serving(urls, prefix, overrides) as (console, services, settings):
                token = issue_token(TEST_SIGNING_KEY, tenant, ["operator"])
                yield Stack(console, token, tenant, urls, services, settings)
    finally:
        await _remove_exchange(prefix)


async def _remove_exchange(prefix: str) -> None:
    """The services declare the run's exchange and its parking queue: gone with the run."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for name in (f"{prefix}events", f"{prefix}events.unrouted"):
            await channel.exchange_delete(name)
        await channel.queue_delete(f"{prefix}events.unrouted")


async def _run(url: str, *statements: tuple[str, dict[str, Any]]) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for sql, params in statements:
                await conn.execute(sa.text(_typed(sql)), params)
            await conn.execute(sa.text("ANALYZE"))
    finally:
        await engine.dispose()


MANDATES = 300


def _typed(sql: str) -> str:
    """PostgreSQL cannot infer a parameter's type in ``$1 - interval ...``: say it."""
    casts = {"now": "timestamptz", "n": "int", "m": "int", "h": "text"}
    return re.sub(r":(now|n|m|h)\b", lambda found: f"CAST(:{found[1]} AS {casts[found[1]]})", sql)


async def seed(urls: dict[str, str], tenant: uuid.UUID, invoices: int) -> None:
    """One tenant's year: ``invoices`` invoices posted evenly over the last 365 days (one in 50 not
    looked at yet, the others collected: mostly paid, some submitted, scheduled, failed or
    skipped), the paid ones mostly booked and matched with a latency of seconds to minutes, a few
    on the errors tab."""
    now = datetime.now(UTC)
    t = {"t": tenant, "now": now, "n": invoices, "m": MANDATES}
    history_of = mandate_with_history(tenant)
    await asyncio.gather(
        _run(
            urls["mandate"],
            (
                """INSERT INTO mandates (id, tenant_id, customer_number, scheme, base_status, status, mandate_number,
                       name, email, iban, bic, max_amount_cents, signature_date, sign_method, version,
                       created_at, updated_at)
                   SELECT CASE WHEN i = 1 THEN CAST(:h AS uuid) ELSE gen_random_uuid() END, :t,
                       'C-' || lpad(i::text, 6, '0'), CASE WHEN i % 7 = 0 THEN 'B2B' ELSE 'CORE' END, s, s,
                       'KOP' || lpad(i::text, 7, '0'), 'Klant ' || i, 'klant' || i || '@example.be',
                       'BE68539007547034', 'GKCCBEBB', CASE WHEN i % 3 = 0 THEN 250000 END,
                       CASE WHEN s IN ('active', 'suspended', 'cancelled')
                           THEN (:now - (i + 88) * interval '1 day')::date END,
                       CASE WHEN s IN ('active', 'suspended', 'cancelled') THEN 'itsme' END, 1,
                       :now - i * interval '1 hour', :now
                   FROM generate_series(1, :m) i,
                   LATERAL (SELECT (ARRAY['active','active','active','active','prepared','suspended','cancelled',
                       'rejected'])[i % 8 + 1] AS s) st""",
                {**t, "h": str(history_of)},
            ),
            (
                """INSERT INTO mandate_history (tenant_id, mandate_id, event_id, type, status, action, reason,
                       occurred_at)
                   SELECT :t, CAST(:h AS uuid), gen_random_uuid(), e.type, e.status, e.action, e.reason, :now - e.ago
                   FROM (VALUES ('mandate.prepared', 'prepared', NULL, NULL, interval '90 days'),
                                ('mandate.signed', 'active', NULL, NULL, interval '89 days'),
                                ('mandate.suspended', 'suspended', NULL, 'debtor asked for a pause', interval '1 day'),
                                ('sync.mandate_action_requested', NULL, 'suspend', 'debtor asked for a pause',
                                 interval '1 day'),
                                ('mandate.resumed', 'active', NULL, NULL, interval '2 hours'))
                        AS e(type, status, action, reason, ago)
                   ORDER BY e.ago DESC""",
                {**t, "h": str(history_of)},
            ),
        ),
        _run(
            urls["collection"],
            (
                """INSERT INTO invoices (id, tenant_id, invoice_number, customer_number, customer_name, customer_email,
                       amount_cents, currency, invoice_date, due_date, fingerprint, created_at)
                   SELECT gen_random_uuid(), :t, 'INV-' || lpad(i::text, 7, '0'),
                       'C-' || lpad((i % :m + 1)::text, 6, '0'), 'Klant ' || (i % :m + 1),
                       'klant' || (i % :m + 1) || '@example.be', 1000 + (i * 37) % 50000, 'EUR',
                       (:now - interval '370 days')::date + (i::bigint * 365 / :n)::int,
                       (:now - interval '360 days')::date + (i::bigint * 365 / :n)::int,
                       md5(i::text), :now - interval '370 days' + (i * interval '365 days' / :n)
                   FROM generate_series(1, :n) i""",
                t,
            ),
            (
                """INSERT INTO collections (id, tenant_id, invoice_id, attempt, method, status, reason_code, reason,
                       mandate_number, collect_on, twikey_transaction_id, submitted_at, paid_at, version,
                       created_at, updated_at)
                   SELECT gen_random_uuid(), :t, v.id, 1, 'direct_debit', s,
                       CASE s WHEN 'skipped' THEN 'no_mandate' WHEN 'failed' THEN 'bank_error' END,
                       CASE s WHEN 'skipped' THEN 'no signed mandate' WHEN 'failed' THEN 'refused by the bank' END,
                       'KOP' || lpad(substr(v.customer_number, 3), 7, '0'), v.due_date,
                       CASE WHEN s IN ('submitted', 'paid', 'failed') THEN 'TX' || v.seq END,
                       CASE WHEN s IN ('submitted', 'paid', 'failed') THEN v.created_at + interval '2 days' END,
                       CASE WHEN s = 'paid' THEN v.created_at + interval '5 days' END,
                       1, v.created_at, v.created_at
                   FROM invoices v,
                   LATERAL (SELECT (ARRAY['paid','paid','paid','paid','paid','paid','submitted','scheduled','failed',
                       'skipped'])[v.seq % 10 + 1] AS s) st
                   WHERE v.tenant_id = :t AND v.seq % 50 <> 0""",
                t,
            ),
            (
                """INSERT INTO twikey_updates (tenant_id, event_id, event_type, data, failed_at, error)
                   VALUES (:t, gen_random_uuid(), 'collection.twikey_update', '{}', :now, 'unknown transaction')""",
                t,
            ),
        ),
        _run(
            urls["bookkeeping"],
            (
                """INSERT INTO bookings (id, tenant_id, collection_id, payment_kind, twikey_id, twikey_transaction_id,
                       reference, invoice_number, customer_number, customer_name, amount_cents, method, paid_on,
                       status, memo_number, error_code, error_message, hint, created_at, updated_at, booked_at,
                       matched_at)
                   SELECT gen_random_uuid(), :t, 'col-' || i, 'transaction', 'TX' || i, 'TX' || i, 'TX' || i,
                       'INV-' || lpad(i::text, 7, '0'), 'C-' || lpad((i % :m + 1)::text, 6, '0'),
                       'Klant ' || (i % :m + 1), 1000 + (i * 37) % 50000, 'direct_debit', paid::date, s,
                       CASE WHEN s = 'matched' THEN '2026' || lpad(i::text, 6, '0') END,
                       CASE WHEN s = 'error' THEN 'invoice_not_found' END,
                       CASE WHEN s = 'error' THEN 'Invoice INV-' || lpad(i::text, 7, '0') || ' not found' END,
                       CASE WHEN s = 'error' THEN 'Enter the sales invoice in Twinfield, then retry.' END,
                       paid, paid, CASE WHEN s = 'matched' THEN paid + ((i * 7919) % 600 + 2) * interval '1 second' END,
                       CASE WHEN s = 'matched' THEN paid + ((i * 7919) % 600 + 3) * interval '1 second' END
                   FROM generate_series(1, :n) i,
                   LATERAL (SELECT :now - interval '365 days' + (i * interval '365 days' / :n) AS paid,
                       CASE WHEN i % 100 = 3 THEN 'error' WHEN i % 100 = 4 THEN 'open' ELSE 'matched' END AS s) st
                   WHERE i % 10 < 6 AND i % 50 <> 0""",
                t,
            ),
        ),
        _run(
            urls["sync"],
            (
                """INSERT INTO feed_cursors (tenant_id, feed, cursor, messages_total, last_drain_at, last_drain_count,
                       last_error, last_error_at)
                   VALUES (:t, 'mandate', 812, 812, :now - interval '40 seconds', 3, NULL, NULL),
                          (:t, 'transaction', 24031, 24031, :now - interval '25 seconds', 40, NULL, NULL),
                          (:t, 'paylink', 77, 77, :now - interval '2 hours', 0, 'Twikey answered 503', :now)""",
                t,
            ),
        ),
        _run(
            urls["notify"],
            (
                """INSERT INTO webhook_endpoints (id, tenant_id, url, description, event_types, enabled, secret,
                       consecutive_failures, failing_since, last_failure_at, last_success_at)
                   VALUES (:ok, :t, 'https://erp.example.be/koppel', 'ERP', '{*}', true, 'sealed', 0, NULL, NULL, :now),
                          (:bad, :t, 'https://old-erp.example.be/hooks', 'old ERP', '{mandate.*}', true, 'sealed', 12,
                           :now - interval '3 hours', :now, NULL)""",
                {**t, "ok": uuid.UUID(int=tenant.int ^ 2), "bad": uuid.UUID(int=tenant.int ^ 3)},
            ),
            (
                """INSERT INTO events (tenant_id, event_id, type, occurred_at, payload, feed_seq)
                   SELECT :t, gen_random_uuid(),
                       (ARRAY['mandate.signed', 'collection.paid', 'booking.booked'])[i % 3 + 1],
                       :now - i * interval '1 minute', '{}', i
                   FROM generate_series(1, 600) i""",
                t,
            ),
            (
                """INSERT INTO deliveries (id, tenant_id, endpoint_id, event_seq, event_id, event_type, status,
                       attempts, last_status_code, last_error, created_at)
                   SELECT gen_random_uuid(), :t, CASE WHEN e.type LIKE 'mandate.%' AND e.feed_seq % 2 = 0
                       THEN CAST(:bad AS uuid) ELSE CAST(:ok AS uuid) END, e.seq, e.event_id, e.type,
                       CASE WHEN e.type LIKE 'mandate.%' AND e.feed_seq % 2 = 0 THEN 'failed' ELSE 'succeeded' END,
                       1, CASE WHEN e.type LIKE 'mandate.%' AND e.feed_seq % 2 = 0 THEN 502 ELSE 200 END,
                       CASE WHEN e.type LIKE 'mandate.%' AND e.feed_seq % 2 = 0 THEN 'Bad Gateway' END, e.occurred_at
                   FROM events e WHERE e.tenant_id = :t ORDER BY e.seq""",
                {**t, "ok": uuid.UUID(int=tenant.int ^ 2), "bad": uuid.UUID(int=tenant.int ^ 3)},
            ),
        ),
    )


def mandate_with_history(tenant: uuid.UUID) -> uuid.UUID:
    return uuid.UUID(int=tenant.int ^ 1)
