"""The koppel command: tokens, tenants, dead letters against the real broker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from koppel_cli.localrun import Plan
from koppel_cli.main import app
from koppel_shared.auth import SigningKey, TokenError, verify_token
from koppel_shared.settings import DEV_TOKEN_PUBLIC_KEYS

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
    assert env["KOPPEL_TOKEN_PUBLIC_KEYS"] == key.public_entry()
    for caller in ("mandate", "bookkeeping"):
        token = env[f"KOPPEL_{caller.upper()}_SYNC_TOKEN"]
        assert verify_token(key.public_entry(), token, acting_for=uuid.uuid4()).subject == f"service:{caller}"


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
