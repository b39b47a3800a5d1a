"""The ``koppel`` command for operators and developers."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from koppel_cli import infra
from koppel_cli.demo import DemoFailed, register_tenant, run_demo, wire_demo_tenant
from koppel_cli.localrun import (
    DEMO_TENANT,
    SERVICES,
    SYNC_CALLERS,
    Plan,
    Supervisor,
    demo_token,
    fresh_start,
    summary,
    write_admin_token,
)
from koppel_cli.reconcile import reconcile
from koppel_shared.auth import TENANT_SCOPES, SigningKey, issue_admin_token, issue_service_token, issue_token
from koppel_shared.messaging.broker import Broker
from koppel_shared.messaging.deadletters import discard_dead_letters, list_dead_letters, replay_dead_letters
from koppel_shared.settings import IssuerSettings, KoppelSettings

app = typer.Typer(
    help="Koppel: run it, manage tenants and tokens, inspect dead letters, start sandboxes.", no_args_is_help=True
)
tenant_app = typer.Typer(help="Tenants.", no_args_is_help=True)
token_app = typer.Typer(help="Tokens (signed JWTs): tenant, service, admin; list, revoke.", no_args_is_help=True)
dlq_app = typer.Typer(
    help="Dead letters (messages a service could not handle) and parked Twikey updates (collection-svc).",
    no_args_is_help=True,
)
sandbox_app = typer.Typer(help="Run a sandbox on its own.", no_args_is_help=True)
feed_app = typer.Typer(help="Twikey feeds (sync-svc).", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(token_app, name="token")
app.add_typer(dlq_app, name="dlq")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(feed_app, name="feed")
app.command("reconcile")(reconcile)

SERVICE_NAMES = ("mandate", "collection", "sync", "bookkeeping", "notify")


@app.command()
def run(
    port_offset: Annotated[int, typer.Option(help="Add this to every port (to run beside another copy).")] = 0,
    prefix: Annotated[str, typer.Option(help="Prefix for databases, exchange and queues.")] = "",
    no_sandboxes: Annotated[bool, typer.Option("--no-sandboxes", help="Do not start the sandboxes.")] = False,
    no_gateway: Annotated[bool, typer.Option("--no-gateway", help="Do not start the nginx gateway.")] = False,
    log_dir: Annotated[Path, typer.Option(help="Where process logs go.")] = Path("var/log"),
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start empty: drop the databases and the sandboxes' records first.")
    ] = False,
) -> None:
    """Start everything locally: PostgreSQL and RabbitMQ (if down), migrations, every service's API
    and worker, the sandboxes; then print the URLs and a demo tenant token. Ctrl-C stops it all.
    Started again, it carries on where it stopped: the databases and the sandboxes' records (under
    the state folder beside the logs) are kept."""
    infra.ensure_infrastructure(say=typer.echo)
    if not no_gateway:
        no_gateway = not infra.ensure_debian_package("nginx", "nginx", say=typer.echo)
    plan = Plan(offset=port_offset, prefix=prefix, log_dir=log_dir, sandboxes=not no_sandboxes, gateway=not no_gateway)
    if fresh:
        fresh_start(plan, say=typer.echo)
    supervisor = Supervisor(plan, say=typer.echo)
    stopping = False

    def on_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        typer.echo("migrating databases ...")
        supervisor.migrate()
        typer.echo("starting services ...")
        supervisor.start()
        gateway = supervisor.start_gateway()
        supervisor.wait_ready()
        write_admin_token(plan, IssuerSettings())
        token = demo_token(IssuerSettings())
        if plan.sandboxes:
            typer.echo("connecting the demo tenant to the sandboxes ...")
            try:
                wire_demo_tenant(plan.demo_urls(), token, plan.service_urls())
            except DemoFailed as exc:
                typer.echo(f"warning: the demo tenant is not fully wired: {exc}")
        typer.echo(summary(plan, token, gateway))
        while not stopping:
            supervisor.restart_dead()
            time.sleep(0.5)
    finally:
        typer.echo("stopping ...")
        supervisor.stop()
        typer.echo("stopped.")


@app.command()
def demo(
    port_offset: Annotated[int, typer.Option(help="The --port-offset `koppel run` was started with.")] = 0,
    no_gateway: Annotated[bool, typer.Option("--no-gateway", help="`koppel run` was started without it.")] = False,
) -> None:
    """Walk the whole story against a running `koppel run`: prepare a mandate, sign it as the
    debtor, post an invoice, collect it, the bank pays, see it booked and matched in Twinfield."""
    plan = Plan(offset=port_offset, gateway=not no_gateway)
    try:
        run_demo(plan.demo_urls(), demo_token(IssuerSettings()), say=typer.echo)
    except (DemoFailed, httpx.HTTPError) as exc:
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(1) from exc


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Option(help="A name for people; the id is what services use.")],
    demo: Annotated[bool, typer.Option(help="Use the fixed demo tenant id.")] = False,
    gateway: Annotated[
        str, typer.Option(envvar="KOPPEL_GATEWAY_URL", help="Where Koppel answers (the gateway).")
    ] = "http://127.0.0.1:8080",
) -> None:
    """Register a tenant and print its id and an ERP + operator token. Every service honours the
    tenant's tokens from then on; tokens of unregistered tenants are refused (401 unknown_tenant)."""
    tenant_id = DEMO_TENANT if demo else uuid.uuid4()
    token = issue_token(IssuerSettings().signing_key, tenant_id, ["erp", "operator"], subject=f"tenant:{name}")
    base = gateway.rstrip("/")
    try:
        register_tenant({service: base for service in SERVICES}, token, name)
    except (DemoFailed, httpx.HTTPError) as exc:
        typer.echo(f"could not register the tenant at {base}: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps({"tenant_id": str(tenant_id), "name": name, "token": token}, indent=2))


SCOPE_HELP = f"Scopes: {', '.join(TENANT_SCOPES)}. Repeat for several."


@token_app.command("issue")
def token_issue(
    tenant: Annotated[uuid.UUID, typer.Option(help="Tenant id.")],
    scope: Annotated[list[str], typer.Option(help=SCOPE_HELP)] = ["erp"],  # noqa: B006
    ttl_days: Annotated[int, typer.Option(help="Validity in days.")] = 365,
) -> None:
    """Issue a signed tenant token (signed with KOPPEL_TOKEN_SIGNING_KEY)."""
    try:
        token = issue_token(IssuerSettings().signing_key, tenant, scope, ttl=timedelta(days=ttl_days))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(token)


@token_app.command("service")
def token_service(
    service: Annotated[str, typer.Option(help="The calling service: mandate or bookkeeping (they call sync-svc).")],
    ttl_days: Annotated[int, typer.Option(help="Validity in days.")] = 365,
) -> None:
    """Issue a service token (scope internal, for the tenant each call names) for
    KOPPEL_<SERVICE>_SYNC_TOKEN."""
    if service not in SYNC_CALLERS:
        raise typer.BadParameter(f"one of {', '.join(SYNC_CALLERS)}", param_hint="--service")
    typer.echo(issue_service_token(IssuerSettings().signing_key, service, ttl=timedelta(days=ttl_days)))


TenantOpt = Annotated[uuid.UUID, typer.Option(help="Tenant id.")]


@token_app.command("admin")
def token_admin(
    ttl_days: Annotated[int, typer.Option(help="Validity in days.", min=1, max=365)] = 30,
    subject: Annotated[str, typer.Option(help="Who holds it, for the logs (letters, digits, . _ -).")] = "operator",
) -> None:
    """Issue an admin token: installation-wide, no tenant; it creates tenants (POST /v1/tenants,
    the console's tenant page) and nothing else."""
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", subject):
        raise typer.BadParameter("letters, digits, . _ - only", param_hint="--subject")
    typer.echo(issue_admin_token(IssuerSettings().signing_key, ttl=timedelta(days=ttl_days), subject=subject))


@token_app.command("list")
def token_list(tenant: TenantOpt, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the tokens sync-svc issued for a tenant (KOPPEL_SYNC_URL); tokens this command issued
    are not recorded anywhere, but can be revoked by their id all the same."""
    reply = _as_operator("sync", tenant, "GET", "/v1/tokens")
    _exit_unless_ok(reply)
    _echo_items(
        reply.json()["items"],
        as_json,
        f"no tokens issued for tenant {tenant} from the API",
        "{id}  {label}  scopes={scopes}  expires={expires_at}  revoked={revoked_at}",
    )


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (its jti; `koppel token list`).")],
    tenant: TenantOpt,
) -> None:
    """Revoke a tenant's token on every service within seconds (through sync-svc, KOPPEL_SYNC_URL):
    one issued from the API, or one this command issued (its jti)."""
    reply = _as_operator("sync", tenant, "DELETE", f"/v1/tokens/{token_id}")
    if reply.status_code != 204:
        typer.echo(reply.text, err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {token_id}")


@token_app.command("keygen")
def token_keygen(
    kid: Annotated[str, typer.Option(help="The new key's id, e.g. the date: 2026-12.")],
) -> None:
    """A new signing key: KOPPEL_TOKEN_SIGNING_KEY for the issuer, and its entry for every
    verifier's KOPPEL_TOKEN_PUBLIC_KEYS (add it there before signing with it)."""
    try:
        key = SigningKey.generate(kid)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--kid") from exc
    typer.echo(json.dumps({"signing_key": key.encoded(), "public_key": key.public_entry()}, indent=2))


def _with_broker(fn):
    async def go():
        settings = KoppelSettings()
        broker = Broker(settings.amqp_url.get_secret_value(), settings.exchange)
        await broker.connect(attempts=3)
        try:
            return await fn(broker, settings)
        finally:
            await broker.close()

    return asyncio.run(go())


ServiceOpt = Annotated[str, typer.Option(help=f"One of: {', '.join(SERVICE_NAMES)}.")]


def _check_service(service: str) -> str:
    if service not in SERVICE_NAMES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICE_NAMES)}")
    return service


@dlq_app.command("list")
def dlq_list(service: ServiceOpt, limit: int = 100, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List dead letters of a service, with the reason each failed."""
    _check_service(service)
    letters = _with_broker(lambda b, s: list_dead_letters(b, service, s.queue_prefix, limit))
    _echo_items(
        [d.as_dict() for d in letters],
        as_json,
        f"no dead letters for {service}-svc",
        "{message_id}  {type:24} attempts={attempts} failed_at={failed_at}\n    queue={queue}\n    reason={reason}",
    )


def _echo_items(items: list[dict[str, Any]], as_json: bool, none: str, line: str) -> None:
    """A listing as JSON, or one ``line`` (a format string over an item's fields) per item."""
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        typer.echo(none)
    for item in items:
        typer.echo(line.format(**item))


@dlq_app.command("replay")
def dlq_replay(
    service: ServiceOpt,
    id: Annotated[list[str], typer.Option("--id", help="Message id to replay; repeat for several.")] = [],  # noqa: B006
    all_: Annotated[bool, typer.Option("--all", help="Replay every dead letter of the service.")] = False,
) -> None:
    """Send dead letters back to the queue they came from."""
    _check_service(service)
    if not id and not all_:
        raise typer.BadParameter("give --id (repeatable) or --all")
    ids = None if all_ else set(id)
    count = _with_broker(lambda b, s: replay_dead_letters(b, service, s.queue_prefix, ids))
    typer.echo(f"replayed {count} message(s)")


@dlq_app.command("discard")
def dlq_discard(
    service: ServiceOpt,
    id: Annotated[list[str], typer.Option("--id", help="Message id to discard; repeat for several.")],
) -> None:
    """Remove dead letters that have been dealt with."""
    _check_service(service)
    count = _with_broker(lambda b, s: discard_dead_letters(b, service, s.queue_prefix, set(id)))
    typer.echo(f"discarded {count} message(s)")


@dlq_app.command("parked")
def dlq_parked(tenant: TenantOpt, limit: int = 200, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List a tenant's parked Twikey updates: messages collection-svc took in but could not apply,
    with the error (KOPPEL_COLLECTION_URL)."""
    reply = _as_operator("collection", tenant, "GET", "/v1/parked-updates", params={"limit": limit})
    _exit_unless_ok(reply)
    _echo_items(
        reply.json()["items"],
        as_json,
        f"no parked updates for tenant {tenant}",
        "{seq}  {event_type:28} failed_at={failed_at}\n    event_id={event_id}\n    error={error}",
    )


@dlq_app.command("retry-parked")
def dlq_retry_parked(
    tenant: TenantOpt,
    seq: Annotated[list[int], typer.Option("--seq", help="A parked update's seq; repeat for several.")] = [],  # noqa: B006
    all_: Annotated[bool, typer.Option("--all", help="Retry every parked update of the tenant.")] = False,
) -> None:
    """Put parked Twikey updates back in line; collection-svc's applier tries them again."""
    if bool(seq) == all_:
        raise typer.BadParameter("give --seq (repeatable) or --all")
    body: dict[str, Any] = {"all": True} if all_ else {"seqs": seq}
    reply = _as_operator("collection", tenant, "POST", "/v1/parked-updates/retry", json=body)
    _exit_unless_ok(reply)
    typer.echo(f"retried {len(reply.json()['retried'])} update(s)")


def _exit_unless_ok(reply: httpx.Response) -> None:
    if reply.status_code != 200:
        typer.echo(reply.text, err=True)
        raise typer.Exit(1)


@feed_app.command("reset")
def feed_reset(
    tenant: Annotated[uuid.UUID, typer.Option(help="Tenant id.")],
    feed: Annotated[str, typer.Option(help="mandate, transaction, paylink or all.")] = "all",
    since: Annotated[str | None, typer.Option(help="ISO date-time to replay from (default: the start).")] = None,
) -> None:
    """Replay a tenant's Twikey feed through sync-svc (KOPPEL_SYNC_URL); replays cause no duplicates."""
    body: dict[str, str] = {"feed": feed}
    if since:
        body["since"] = since
    reply = _as_operator("sync", tenant, "POST", "/v1/twikey/feeds/reset", json=body)
    typer.echo(json.dumps(reply.json(), indent=2))
    if reply.status_code != 200:
        raise typer.Exit(1)


SERVICE_URLS = {
    "sync": ("KOPPEL_SYNC_URL", "http://127.0.0.1:8103"),
    "collection": ("KOPPEL_COLLECTION_URL", "http://127.0.0.1:8102"),
}


def _as_operator(service: str, tenant: uuid.UUID, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Call a service's API with a short-lived operator token of the tenant (``KOPPEL_<SERVICE>_URL``)."""
    token = issue_token(IssuerSettings().signing_key, tenant, ["operator"], ttl=timedelta(minutes=5))
    variable, default = SERVICE_URLS[service]
    base = os.environ.get(variable, default)
    try:
        return httpx.request(
            method,
            f"{base.rstrip('/')}{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            **kwargs,
        )
    except httpx.HTTPError as exc:
        raise typer.BadParameter(f"{service}-svc at {base} is not reachable: {exc}") from exc


@sandbox_app.command("twikey")
def sandbox_twikey(host: str = "127.0.0.1", port: int = 8601) -> None:
    """Run the Twikey sandbox on its own (prints its API key)."""
    from twikey_sandbox.server import run as run_sandbox

    run_sandbox(host=host, port=port)


@sandbox_app.command("twinfield")
def sandbox_twinfield(host: str = "127.0.0.1", port: int = 8602) -> None:
    """Run the Twinfield sandbox on its own (prints its client id and office)."""
    from twinfield_sandbox.server import run as run_sandbox

    run_sandbox(host=host, port=port)


if __name__ == "__main__":
    app()
