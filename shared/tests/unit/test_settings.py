import uuid

import pytest
from pydantic import Field, SecretStr, ValidationError

from koppel_shared.auth import SigningKey, verify_token
from koppel_shared.settings import (
    DEV_SYNC_TOKEN_PUBLIC_KEY,
    DEV_SYNC_TOKEN_SIGNING_KEY,
    DEV_TOKEN_PUBLIC_KEYS,
    IssuerSettings,
    KoppelSettings,
    dev_service_token,
)
from koppel_shared.testing.fixtures import TEST_PUBLIC_KEYS, TEST_SIGNING_KEY

REAL_KEY = "dGVzdC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY="


class MandateLike(KoppelSettings):
    service_prefix = "KOPPEL_MANDATE_"


class WithServiceToken(KoppelSettings):
    sync_token: SecretStr = Field(default_factory=lambda: dev_service_token("mandate"))


def test_service_prefix_wins_over_common_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOPPEL_DATABASE_URL", "postgresql+asyncpg://h/common")
    monkeypatch.setenv("KOPPEL_MANDATE_DATABASE_URL", "postgresql+asyncpg://h/mandate")
    monkeypatch.setenv("KOPPEL_EXCHANGE", "shared.events")
    s = MandateLike()
    assert s.database_url.endswith("/mandate")
    assert s.exchange == "shared.events"


def test_placeholder_secrets_are_refused_outside_dev() -> None:
    with pytest.raises(ValidationError, match="token_public_keys"):
        KoppelSettings(environment="prod", encryption_keys=REAL_KEY)


def test_the_dev_public_key_is_refused_outside_dev_even_beside_a_real_one() -> None:
    keys = f"{DEV_TOKEN_PUBLIC_KEYS},{TEST_PUBLIC_KEYS}"
    with pytest.raises(ValidationError, match="token_public_keys"):
        KoppelSettings(environment="prod", encryption_keys=REAL_KEY, token_public_keys=keys)


def test_the_dev_sync_public_key_is_trusted_in_dev_and_refused_outside_dev() -> None:
    assert SigningKey.parse(DEV_SYNC_TOKEN_SIGNING_KEY).public_entry() == DEV_SYNC_TOKEN_PUBLIC_KEY
    assert KoppelSettings(environment="dev").public_keys.kids == {
        DEV_TOKEN_PUBLIC_KEYS.split(":")[0],
        DEV_SYNC_TOKEN_PUBLIC_KEY.split(":")[0],
    }
    keys = f"{TEST_PUBLIC_KEYS},{DEV_SYNC_TOKEN_PUBLIC_KEY}"
    with pytest.raises(ValidationError, match="token_public_keys"):
        KoppelSettings(environment="prod", encryption_keys=REAL_KEY, token_public_keys=keys)


def test_dev_signing_key_and_dev_service_token_are_refused_outside_dev() -> None:
    with pytest.raises(ValidationError, match="token_signing_key"):
        IssuerSettings(environment="prod", encryption_keys=REAL_KEY, token_public_keys=TEST_PUBLIC_KEYS)
    with pytest.raises(ValidationError, match="sync_token"):
        WithServiceToken(environment="prod", encryption_keys=REAL_KEY, token_public_keys=TEST_PUBLIC_KEYS)


def test_placeholder_secrets_are_fine_in_dev() -> None:
    assert KoppelSettings(environment="dev").is_dev
    issuer = IssuerSettings(environment="dev")
    token = WithServiceToken(environment="dev").sync_token.get_secret_value()
    assert verify_token(KoppelSettings().public_keys, token, acting_for=uuid.uuid4()).has("internal")
    assert issuer.signing_key.public_entry() == DEV_TOKEN_PUBLIC_KEYS


def test_real_secrets_are_accepted_in_prod() -> None:
    s = KoppelSettings(
        environment="prod",
        token_public_keys=TEST_PUBLIC_KEYS,
        encryption_keys=REAL_KEY,
        amqp_url="amqp://koppel:s3cr3t@rabbit:5672/",
    )
    assert s.public_keys.kids == {"test", "test-sync"}
    assert "s3cr3t" not in repr(s)
    issuer = IssuerSettings(
        environment="prod",
        token_public_keys=TEST_PUBLIC_KEYS,
        encryption_keys=REAL_KEY,
        token_signing_key=TEST_SIGNING_KEY.encoded(),
    )
    assert TEST_SIGNING_KEY.encoded() not in repr(issuer)


def test_a_malformed_key_setting_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="base64url"):
        KoppelSettings(token_public_keys="k1:not base64!")
    with pytest.raises(ValidationError, match="32 bytes"):
        IssuerSettings(token_signing_key="k1:c2hvcnQ")


def test_derived_keys_differ_by_purpose_and_follow_the_encryption_key() -> None:
    s = KoppelSettings(encryption_keys=REAL_KEY)
    assert s.derived_key("a") != s.derived_key("b")
    assert s.derived_key("a") != KoppelSettings().derived_key("a")


def test_known_tenants_only_can_be_switched_off_only_in_tests() -> None:
    secrets = {"token_public_keys": TEST_PUBLIC_KEYS, "encryption_keys": REAL_KEY}
    assert KoppelSettings(environment="test", known_tenants_only=False, **secrets).known_tenants_only is False
    with pytest.raises(ValueError, match="known_tenants_only"):
        KoppelSettings(environment="dev", known_tenants_only=False)
