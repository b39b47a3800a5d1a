"""The koppel command: tokens, tenants, dead letters against the real broker."""

from __future__ import annotations

import json
import uuid

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
