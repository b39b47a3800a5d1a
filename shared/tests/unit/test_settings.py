import pytest
from pydantic import ValidationError

from koppel_shared.settings import KoppelSettings

REAL_KEY = "dGVzdC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY="


class MandateLike(KoppelSettings):
    service_prefix = "KOPPEL_MANDATE_"


def test_service_prefix_wins_over_common_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOPPEL_DATABASE_URL", "postgresql+asyncpg://h/common")
    monkeypatch.setenv("KOPPEL_MANDATE_DATABASE_URL", "postgresql+asyncpg://h/mandate")
    monkeypatch.setenv("KOPPEL_EXCHANGE", "shared.events")
    s = MandateLike()
    assert s.database_url.endswith("/mandate")
    assert s.exchange == "shared.events"


def test_placeholder_secrets_are_refused_outside_dev() -> None:
    with pytest.raises(ValidationError, match="jwt_secret"):
        KoppelSettings(environment="prod", encryption_keys="dGVzdC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY=")


def test_placeholder_secrets_are_fine_in_dev() -> None:
    assert KoppelSettings(environment="dev").is_dev


def test_real_secrets_are_accepted_in_prod() -> None:
    s = KoppelSettings(
        environment="prod",
        jwt_secret="a-real-secret-of-enough-length-123456",
        encryption_keys="dGVzdC1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY=",
        amqp_url="amqp://koppel:s3cr3t@rabbit:5672/",
    )
    assert s.jwt_secret.get_secret_value().startswith("a-real")
    assert "s3cr3t" not in repr(s)


def test_known_tenants_only_can_be_switched_off_only_in_tests() -> None:
    secrets = {"jwt_secret": "a-real-test-secret-0123456789abcdef", "encryption_keys": REAL_KEY}
    assert KoppelSettings(environment="test", known_tenants_only=False, **secrets).known_tenants_only is False
    with pytest.raises(ValueError, match="known_tenants_only"):
        KoppelSettings(environment="dev", known_tenants_only=False)
