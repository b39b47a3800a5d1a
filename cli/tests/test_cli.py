"""The koppel command: tokens, tenants, dead letters against the real broker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from koppel_cli.localrun import Plan
from koppel_cli.main import app
from koppel_shared.auth import SigningKey, TokenError, verify_token
from koppel_shared.settings import DEV_SYNC_TOKEN_PUBLIC_KEY, DEV_TOKEN_PUBLIC_KEYS

runner = CliRunner()


def test_token_issue_gives_a_token_the_services_accept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOPPEL_TOKEN_SIGNING_KEY", raising=False)
    tenant = uuid.uuid4()
    result = runner.invoke(app, ["token", "issue", "--tenant", str(tenant), "--scope", "erp", "--scope", "operator"])
    assert result.exit_code == 0, result.output
    principal = verify_token(DEV_TOKEN_PUBLIC_KEYS, result.output.strip())
    assert principal.tenant_id == tenant and principal.has("operator")


def test_token_issue_signs_with_the_configured_key_and_kid(monkeypatch: pytest.MonkeyPatch) -> None:
    key = SigningKey.generate("2026-12")
    monkeypatch.setenv("KOPPEL_TOKEN_SIGNING_KEY", key.encoded())
    tenant = uuid.uuid4()
    result = runner.invoke(app, ["token", "issue", "--tenant", str(tenant)])
    assert result.exit_code == 0, result.output
    assert verify_token(key.public_entry(), result.output.strip()).tenant_id == tenant
    with pytest.raises(TokenError, match="unknown key"):
        verify_token(DEV_TOKEN_PUBLIC_KEYS, result.output.strip())


def test_token_service_gives_an_internal_service_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOPPEL_TOKEN_SIGNING_KEY", raising=False)
    result = runner.invoke(app, ["token", "service", "--service", "bookkeeping"])
    assert result.exit_code == 0, result.output
    tenant = uuid.uuid4()
    principal = verify_token(DEV_TOKEN_PUBLIC_KEYS, result.output.strip(), acting_for=tenant)
    assert principal.tenant_id == tenant and principal.scopes == {"internal"}
    refused = runner.invoke(app, ["token", "service", "--service", "collection"])
    assert refused.exit_code != 0 and "mandate, bookkeeping" in refused.output


def test_token_keygen_gives_a_pair_for_rotation() -> None:
    result = runner.invoke(app, ["token", "keygen", "--kid", "2027-01"])
    assert result.exit_code == 0, result.output
    pair = json.loads(result.output)
    key = SigningKey.parse(pair["signing_key"])
    assert key.kid == "2027-01" and key.public_entry() == pair["public_key"]
    assert runner.invoke(app, ["token", "keygen", "--kid", "no spaces"]).exit_code != 0


def test_koppel_run_gives_the_services_the_public_key_and_service_tokens_not_the_signing_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = SigningKey.generate("local")
    monkeypatch.setenv("KOPPEL_TOKEN_SIGNING_KEY", key.encoded())
    monkeypatch.delenv("KOPPEL_TOKEN_PUBLIC_KEYS", raising=False)
    env = Plan().environment()
    assert "KOPPEL_TOKEN_SIGNING_KEY" not in env
    assert key.encoded() not in env.values()
    # sync-svc's own key (the development one here) is trusted beside the command's
    assert env["KOPPEL_TOKEN_PUBLIC_KEYS"] == f"{key.public_entry()},{DEV_SYNC_TOKEN_PUBLIC_KEY}"
    for caller in ("mandate", "bookkeeping"):
        token = env[f"KOPPEL_{caller.upper()}_SYNC_TOKEN"]
        assert verify_token(key.public_entry(), token, acting_for=uuid.uuid4()).subject == f"service:{caller}"


def test_koppel_run_gives_sync_svc_alone_its_signing_key_and_everyone_its_public_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, sync_key = SigningKey.generate("local"), SigningKey.generate("local-sync")
    monkeypatch.setenv("KOPPEL_TOKEN_SIGNING_KEY", key.encoded())
    monkeypatch.setenv("KOPPEL_SYNC_TOKEN_SIGNING_KEY", sync_key.encoded())
    monkeypatch.delenv("KOPPEL_TOKEN_PUBLIC_KEYS", raising=False)
    plan = Plan()
    for process in ("sync-api", "sync-worker", "sync-migrate"):
        assert plan.environment(process)["KOPPEL_SYNC_TOKEN_SIGNING_KEY"] == sync_key.encoded()
    for process in ("mandate-api", "collection-worker", "notify-migrate", "console", "sandbox-twikey", ""):
        env = plan.environment(process)
        assert sync_key.encoded() not in env.values() and key.encoded() not in env.values(), process
        assert env["KOPPEL_TOKEN_PUBLIC_KEYS"] == f"{key.public_entry()},{sync_key.public_entry()}"


def test_token_admin_gives_an_installation_token_without_tenant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOPPEL_TOKEN_SIGNING_KEY", raising=False)
    result = runner.invoke(app, ["token", "admin", "--subject", "ops"])
    assert result.exit_code == 0, result.output
    principal = verify_token(DEV_TOKEN_PUBLIC_KEYS, result.output.strip())
    assert principal.admin and principal.scopes == {"admin"} and principal.subject == "admin:ops"
    assert runner.invoke(app, ["token", "admin", "--subject", "no spaces"]).exit_code != 0
    assert runner.invoke(app, ["token", "admin", "--ttl-days", "0"]).exit_code != 0


def test_koppel_run_writes_an_admin_token_only_its_owner_can_read(tmp_path: Path) -> None:
    from koppel_cli.localrun import write_admin_token
    from koppel_shared.settings import IssuerSettings

    plan = Plan(log_dir=tmp_path / "var" / "log")
    written = write_admin_token(plan, IssuerSettings())
    assert written == tmp_path / "var" / "admin-token" and written.stat().st_mode & 0o777 == 0o600
    assert verify_token(DEV_TOKEN_PUBLIC_KEYS, written.read_text().strip()).admin
    write_admin_token(plan, IssuerSettings())  # written afresh on each run
    assert written.stat().st_mode & 0o777 == 0o600


def test_koppel_run_sends_twinfields_consent_back_to_the_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOPPEL_BOOKKEEPING_CONSOLE_URL", raising=False)
    env = Plan(offset=10).environment()
    # bookkeeping-svc's callback redirects to <console_url>/twinfield, the console's own route
    assert env["KOPPEL_BOOKKEEPING_CONSOLE_URL"] == "http://127.0.0.1:8090/console"
    assert env["KOPPEL_BOOKKEEPING_TWINFIELD_REDIRECT_URI"] == "http://127.0.0.1:8090/v1/twinfield/oauth/callback"


def test_token_issue_refuses_an_unknown_scope() -> None:
    result = runner.invoke(app, ["token", "issue", "--tenant", str(uuid.uuid4()), "--scope", "root"])
    assert result.exit_code != 0 and "unknown scopes" in result.output


def test_tenant_create_says_so_when_koppel_is_not_reachable_and_prints_no_token() -> None:
    # A token of an unregistered tenant is refused everywhere: printing one would only mislead.
    result = runner.invoke(app, ["tenant", "create", "--name", "Acme BV", "--gateway", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "could not register the tenant at http://127.0.0.1:9" in result.output
    assert "token" not in result.stdout


@pytest.mark.integration
def test_dlq_list_and_replay_need_a_known_service_and_talk_to_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOPPEL_QUEUE_PREFIX", f"t_cli_{uuid.uuid4().hex[:8]}.")
    assert runner.invoke(app, ["dlq", "list", "--service", "nope"]).exit_code != 0
    listed = runner.invoke(app, ["dlq", "list", "--service", "mandate"])
    assert listed.exit_code == 0 and "no dead letters for mandate-svc" in listed.output
    replayed = runner.invoke(app, ["dlq", "replay", "--service", "mandate", "--all"])
    assert replayed.exit_code == 0 and "replayed 0" in replayed.output


@pytest.fixture
def collection_svc(database_url: str, broker_prefix: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """collection-svc's API on a port of its own (the CLI calls it over HTTP); its database URL."""
    import asyncio
    import socket
    import threading

    import uvicorn

    from collection_svc.bootstrap import definition
    from collection_svc.settings import Settings
    from koppel_shared.migrations import migrate
    from koppel_shared.service import build_api
    from koppel_shared.testing.fixtures import TEST_SIGNING_KEY, settings_for_test

    settings = settings_for_test(Settings, database_url, broker_prefix)
    asyncio.run(migrate(definition.migrations_dir, settings.database_url))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_api(definition, settings), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.1)
    monkeypatch.setenv("KOPPEL_COLLECTION_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("KOPPEL_TOKEN_SIGNING_KEY", TEST_SIGNING_KEY.encoded())  # the CLI signs with it
    yield settings.database_url
    server.should_exit = True
    thread.join(10)


@pytest.mark.integration
def test_dlq_parked_lists_a_tenants_parked_updates_and_retry_puts_them_back_in_line(collection_svc: str) -> None:
    import asyncio

    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    tenant, other = uuid.uuid4(), uuid.uuid4()

    async def sql(statement: str, **params: object) -> list[tuple[object, ...]]:
        engine = create_async_engine(collection_svc)
        try:
            async with engine.begin() as conn:
                return [tuple(r) for r in await conn.execute(sa.text(statement), params)]
        finally:
            await engine.dispose()

    insert = (
        "INSERT INTO twikey_updates (tenant_id, event_id, event_type, data, failed_at, error)"
        " VALUES (:t, :e, 'twikey.transaction.changed', '{}', now(), :error) RETURNING seq"
    )
    [(seq,)] = asyncio.run(sql(insert, t=tenant, e=uuid.uuid4(), error="could not apply: boom"))
    [(theirs,)] = asyncio.run(sql(insert, t=other, e=uuid.uuid4(), error="theirs"))
    still_parked = "SELECT seq FROM twikey_updates WHERE failed_at IS NOT NULL ORDER BY seq"

    listed = runner.invoke(app, ["dlq", "parked", "--tenant", str(tenant)])
    assert listed.exit_code == 0, listed.output
    assert f"{seq}  twikey.transaction.changed" in listed.output and "could not apply: boom" in listed.output
    assert "theirs" not in listed.output
    assert runner.invoke(app, ["dlq", "retry-parked", "--tenant", str(tenant)]).exit_code != 0  # --seq or --all
    refused = runner.invoke(app, ["dlq", "retry-parked", "--tenant", str(tenant), "--seq", str(theirs)])
    assert refused.exit_code == 1 and "not_parked" in refused.output
    assert asyncio.run(sql(still_parked)) == [(seq,), (theirs,)]

    retried = runner.invoke(app, ["dlq", "retry-parked", "--tenant", str(tenant), "--seq", str(seq)])
    assert retried.exit_code == 0 and "retried 1 update(s)" in retried.output, retried.output
    assert asyncio.run(sql(still_parked)) == [(theirs,)]
    empty = runner.invoke(app, ["dlq", "parked", "--tenant", str(tenant), "--json"])
    assert empty.exit_code == 0 and json.loads(empty.output) == []


@pytest.fixture
def sync_svc(broker_prefix: str, cleanup_exchange: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """sync-svc's API on a port and a database of its own (the CLI calls it over HTTP)."""
    import asyncio

    from koppel_shared.migrations import drop_database, migrate
    from koppel_shared.service import build_api
    from koppel_shared.testing.fixtures import PG_BASE, TEST_SIGNING_KEY, settings_for_test, unique_name
    from koppel_shared.testing.serving import Served
    from sync_svc.bootstrap import definition
    from sync_svc.settings import Settings

    settings = settings_for_test(Settings, f"{PG_BASE}/{unique_name('cli_sync')}", broker_prefix)
    asyncio.run(migrate(definition.migrations_dir, settings.database_url))
    try:
        with Served(build_api(definition, settings), lifespan="on") as served:
            monkeypatch.setenv("KOPPEL_SYNC_URL", served.base)
            monkeypatch.setenv("KOPPEL_TOKEN_SIGNING_KEY", TEST_SIGNING_KEY.encoded())  # the CLI signs with it
            yield served.base
    finally:
        asyncio.run(drop_database(settings.database_url))


@pytest.mark.integration
def test_token_revoke_refuses_a_token_the_command_issued_and_list_shows_the_apis_tokens(sync_svc: str) -> None:
    import httpx

    tenant = uuid.uuid4()
    issued = runner.invoke(app, ["token", "issue", "--tenant", str(tenant), "--scope", "operator"])
    token = issued.output.strip()
    auth = {"Authorization": f"Bearer {token}"}
    made = httpx.post(f"{sync_svc}/v1/tokens", headers=auth, json={"label": "ERP test", "scopes": ["erp"]})
    assert made.status_code == 201, made.text
    listed = runner.invoke(app, ["token", "list", "--tenant", str(tenant), "--json"])
    assert listed.exit_code == 0, listed.output
    assert [t["label"] for t in json.loads(listed.output)] == ["ERP test"]
    assert made.json()["token"] not in listed.output

    from koppel_shared.testing.fixtures import TEST_SIGNING_KEY

    token_id = verify_token(TEST_SIGNING_KEY.public_entry(), token).token_id
    revoked = runner.invoke(app, ["token", "revoke", token_id, "--tenant", str(tenant)])
    assert revoked.exit_code == 0 and f"revoked {token_id}" in revoked.output
    refused = httpx.get(f"{sync_svc}/v1/tokens", headers=auth)
    assert refused.status_code == 401 and refused.json()["code"] == "token_revoked"
    # Another tenant's token is not found under this tenant.
    other = runner.invoke(app, ["token", "revoke", made.json()["id"], "--tenant", str(uuid.uuid4())])
    assert other.exit_code == 1 and "token_not_found" in other.output
    # An admin token (no tenant) is revoked installation-wide.
    admin = runner.invoke(app, ["token", "admin"]).output.strip()
    admin_id = verify_token(TEST_SIGNING_KEY.public_entry(), admin).token_id
    assert runner.invoke(app, ["token", "revoke", admin_id, "--installation"]).exit_code == 0
    refused = httpx.post(f"{sync_svc}/v1/tenants", headers={"Authorization": f"Bearer {admin}"}, json={"name": "X"})
    assert refused.status_code == 401 and refused.json()["code"] == "token_revoked"
    assert runner.invoke(app, ["token", "revoke", admin_id]).exit_code != 0  # --tenant or --installation
