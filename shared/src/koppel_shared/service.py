"""The composition of one service process, shared by all five services.

A service describes itself once (``ServiceDefinition``: name, settings, migrations, its
dependencies object, routers, consumers, background loops); this module turns that into the
process kinds:

- ``api``: FastAPI under uvicorn; writes state and outbox rows, never publishes directly;
- ``worker``: the outbox relay, the inbox consumers and the service's background loops;
- ``migrate``: create the database if missing and run Alembic to head;
- ``wait-migrated``: wait until the database is at this code's head (a container's init step).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from koppel_shared.crypto import SecretBox
from koppel_shared.db import UnitOfWork, asyncpg_dsn, make_engine, make_session_factory
from koppel_shared.logging import configure_logging, get_logger
from koppel_shared.messaging.broker import Broker
from koppel_shared.messaging.inbox import ConsumerSpec, InboxConsumer
from koppel_shared.messaging.outbox import OutboxRelay
from koppel_shared.messaging.topology import QueueSpec
from koppel_shared.migrations import migrate, wait_until_migrated
from koppel_shared.revocations import RevocationList
from koppel_shared.settings import KoppelSettings
from koppel_shared.tenants import TenantDirectory
from koppel_shared.web.app import create_app

log = get_logger(__name__)

Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
Closer = Callable[[], Awaitable[None]]

# The service's own settings class: ``Runtime[Settings]`` gives ``runtime.settings`` that type.
SettingsT = TypeVar("SettingsT", bound=KoppelSettings)
# The service's dependencies object (its clients, gateways, caches), built once per process.
DepsT = TypeVar("DepsT")


@dataclass
class Runtime(Generic[SettingsT]):
    """The resources one process holds, built from settings and closed on exit."""

    settings: SettingsT
    service: str
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    broker: Broker
    secrets: SecretBox
    # what the service's dependencies opened (HTTP pools, connection pools), closed in order
    closers: list[Closer] = field(default_factory=list)

    @classmethod
    async def open(cls, service: str, settings: SettingsT, connect_broker: bool = True) -> Runtime[SettingsT]:
        engine = make_engine(settings.database_url, settings.db_pool_size, settings.db_max_overflow)
        broker = Broker(settings.amqp_url.get_secret_value(), settings.exchange)
        if connect_broker:
            await broker.connect()
        return cls(
            settings=settings,
            service=service,
            engine=engine,
            session_factory=make_session_factory(engine),
            broker=broker,
            secrets=SecretBox(settings.encryption_keys.get_secret_value()),
        )

    async def close(self) -> None:
        for closer in self.closers:
            with contextlib.suppress(Exception):
                await closer()
        await self.broker.close()
        await self.engine.dispose()

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory)

    def queue(self, purpose: str, bindings: Sequence[str]) -> QueueSpec:
        s = self.settings
        return QueueSpec(
            service=self.service,
            purpose=purpose,
            bindings=tuple(bindings),
            prefix=s.queue_prefix,
            delays_ms=tuple(s.retry_delays_ms),
            queue_type=s.queue_type,
            expires_ms=s.queue_expires_ms,
        )

    async def check_database(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def check_broker(self) -> None:
        if not self.broker.is_connected:
            raise ConnectionError("not connected to RabbitMQ")


@dataclass
class ServiceDefinition(Generic[SettingsT, DepsT]):
    """A service: its settings class, its dependencies object and what runs on them.

    ``dependencies`` builds the service's typed dependencies object once per process (after the
    runtime is open; what it opens it registers on ``runtime.closers``); routes reach it through
    a FastAPI dependency on ``koppel_shared.deps.get_dependencies``, consumers and loops get it
    as their second argument and keep it by closure."""

    name: str
    title: str
    settings_cls: type[SettingsT]
    migrations_dir: Path
    description: str = ""
    dependencies: Callable[[Runtime[SettingsT]], Awaitable[DepsT]] | None = None
    routers: Sequence[APIRouter] = ()
    consumers: Callable[[Runtime[SettingsT], DepsT], Sequence[ConsumerSpec]] = lambda rt, deps: ()
    loops: Callable[[Runtime[SettingsT], DepsT], Sequence[Loop]] = lambda rt, deps: ()
    # sets the service's gauges that are read from its database, before each /metrics answer
    metrics: Callable[[Runtime[SettingsT]], Awaitable[None]] | None = None

    async def open_dependencies(self, runtime: Runtime[SettingsT]) -> DepsT:
        if self.dependencies is None:  # a definition without any (the shared library's own tests)
            return cast(DepsT, None)
        return await self.dependencies(runtime)


def build_api(definition: ServiceDefinition[SettingsT, DepsT], settings: SettingsT) -> FastAPI:
    """The service's HTTP app. The runtime is opened in the lifespan, so building the app touches
    neither the database nor the broker; routes reach the runtime through ``deps.RuntimeDep`` and
    the service's dependencies object through ``deps.get_dependencies``."""
    holder: dict[str, Runtime[SettingsT]] = {}

    async def check_database() -> None:
        await holder["rt"].check_database()

    async def check_broker() -> None:
        await holder["rt"].check_broker()

    async def refresh_metrics() -> None:
        if definition.metrics is not None and "rt" in holder:
            try:
                await definition.metrics(holder["rt"])
            except Exception as exc:  # database away: the other metrics are still answered
                log.warning("metrics.refresh_failed", error=repr(exc)[:300])

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.open(definition.name, settings)
        holder["rt"] = runtime
        app.state.runtime = runtime
        app.state.tenants = TenantDirectory(runtime.session_factory)
        app.state.revocations = RevocationList(runtime.session_factory)
        try:
            app.state.dependencies = await definition.open_dependencies(runtime)
            yield
        finally:
            await runtime.close()

    return create_app(
        title=definition.title,
        description=definition.description,
        settings=settings,
        routers=definition.routers,
        lifespan=lifespan,
        ready_checks={"database": check_database, "broker": check_broker},
        metrics_refresh=refresh_metrics,
    )


async def run_worker(
    definition: ServiceDefinition[SettingsT, DepsT],
    settings: SettingsT,
    stop: asyncio.Event,
    started: asyncio.Event | None = None,
) -> None:
    """``started`` is set once every consumer listens: what is published after it is consumed."""
    log.info("worker.starting")
    runtime = await Runtime.open(definition.name, settings)
    try:
        deps = await definition.open_dependencies(runtime)
    except BaseException:
        await runtime.close()
        raise
    consumers = [
        InboxConsumer(
            runtime.broker,
            runtime.session_factory,
            runtime.queue(spec.purpose, spec.bindings),
            spec.handlers,
            max_attempts=settings.max_attempts,
            prefetch=settings.prefetch,
            workers=spec.workers,
        )
        for spec in definition.consumers(runtime, deps)
    ]
    relay = OutboxRelay(
        runtime.session_factory,
        runtime.broker,
        asyncpg_dsn(settings.database_url),
        batch_size=settings.relay_batch_size,
        poll_seconds=settings.relay_poll_seconds,
    )
    try:
        for consumer in consumers:
            await consumer.start()
        tasks = [asyncio.create_task(relay.run(stop))]
        tasks += [asyncio.create_task(loop(stop)) for loop in definition.loops(runtime, deps)]
        log.info("worker.started", consumers=[c.spec.name for c in consumers], loops=len(tasks) - 1)
        if started is not None:
            started.set()
        await stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for consumer in consumers:
            with contextlib.suppress(Exception):
                await consumer.stop()
        await runtime.close()


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)


def main(definition: ServiceDefinition[Any, Any], argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"{definition.name}-svc", description=definition.title)
    parser.add_argument("command", choices=["api", "worker", "migrate", "wait-migrated"])
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=300.0, help="wait-migrated: seconds before giving up")
    args = parser.parse_args(argv)
    settings = definition.settings_cls()
    configure_logging(f"{definition.name}-svc", settings.log_level, settings.log_json)

    if args.command == "migrate":
        asyncio.run(migrate(definition.migrations_dir, settings.database_url))
        log.info("migrate.done", database=settings.database_url.rsplit("/", 1)[-1])
    elif args.command == "wait-migrated":
        # A container's init step: the API and worker start only on a schema this code knows.
        if not asyncio.run(wait_until_migrated(definition.migrations_dir, settings.database_url, args.timeout)):
            raise SystemExit(f"the database is not at this version's schema after {args.timeout:.0f} s; run migrate")
        log.info("migrate.ready", database=settings.database_url.rsplit("/", 1)[-1])
    elif args.command == "api":
        import uvicorn

        uvicorn.run(
            build_api(definition, settings),
            host=args.host or settings.api_host,
            port=args.port or settings.api_port,
            log_level="warning",
            access_log=False,
            proxy_headers=True,
        )
    else:

        async def run() -> None:
            stop = asyncio.Event()
            _install_stop(stop)
            await run_worker(definition, settings, stop)

        asyncio.run(run())
