"""Process settings, built once at the edge of a process and passed in.

Every service reads its own prefix first (``KOPPEL_MANDATE_DATABASE_URL``) and falls back to the
common prefix (``KOPPEL_DATABASE_URL``), so one environment file can serve all services while each
can still be pointed somewhere else. Secrets are ``SecretStr``; outside dev mode the placeholder
values that make local runs convenient are refused, so a forgotten variable fails at start-up
instead of in production.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from koppel_shared.auth import PublicKeys, SigningKey, issue_service_token, token_kid

# Valid values (a Fernet key must decode), but public: fine on a laptop, refused elsewhere.
DEV_ENCRYPTION_KEY = "ZGV2LW9ubHkta2V5LWNoYW5nZS1tZS0wMTIzNDU2Nzg="
# The development token key pair (koppel_shared.auth): anything signed with kid DEV_KID, the key
# itself and a list of public keys that holds it are refused outside dev.
DEV_KID = "dev-only-change-me"
DEV_TOKEN_SIGNING_KEY = f"{DEV_KID}:ZGV2LW9ubHktdG9rZW4ta2V5LWNoYW5nZS1tZS0wMTI"
DEV_TOKEN_PUBLIC_KEYS = f"{DEV_KID}:sSRsU7Ozb49h-vCAHbOQ2vq_htkbaiTzN5PbsINTAuM"
# sync-svc's development key pair (it issues the tokens made from the browser), refused likewise.
DEV_SYNC_KID = "dev-sync-only-change-me"
DEV_SYNC_TOKEN_SIGNING_KEY = f"{DEV_SYNC_KID}:ZGV2LW9ubHktc3luYy10b2tlbi1rZXktY2hhbmdlLW0"
DEV_SYNC_TOKEN_PUBLIC_KEY = f"{DEV_SYNC_KID}:E7gIVWL-kCQ_yMOFO3zvI3Xf1ZtDBecYylCbkGqgcbg"
PLACEHOLDERS = {DEV_ENCRYPTION_KEY, "changeme", "change-me", "secret", ""}

COMMON_PREFIX = "KOPPEL_"


class _CommonEnv(EnvSettingsSource):
    """The common ``KOPPEL_*`` variables, except the fields a service reads under its own prefix only."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in getattr(self.settings_cls, "own_prefix_only", frozenset()):
            return None, field_name, False
        return super().get_field_value(field, field_name)


class KoppelSettings(BaseSettings):
    """Settings every Koppel process has. Subclasses set ``service_prefix``."""

    service_prefix: ClassVar[str] = COMMON_PREFIX
    # Fields read under the service's own prefix only, never from the common one (a secret whose
    # common name means something else, e.g. sync-svc's token_signing_key beside the koppel
    # command's KOPPEL_TOKEN_SIGNING_KEY).
    own_prefix_only: ClassVar[frozenset[str]] = frozenset()
    model_config = SettingsConfigDict(extra="ignore", env_prefix=COMMON_PREFIX)

    environment: Literal["dev", "test", "prod"] = "dev"
    log_level: str = "INFO"
    log_json: bool = True

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/koppel"
    db_pool_size: int = 10
    # Connections opened beyond the pool for a burst, closed again when returned (None: as many
    # as the pool). A pool sized for the usual concurrency keeps bursts from opening and closing
    # connections over and over.
    db_max_overflow: int | None = None
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    exchange: str = "koppel.events"
    # Prepended to every queue name; lets tests and parallel runs share one broker safely.
    queue_prefix: str = ""
    queue_type: Literal["classic", "quorum"] = "quorum"
    # Tests set this so that the queues they declare disappear once unused.
    queue_expires_ms: int | None = None
    # Enough unacknowledged messages for the consumer's workers to keep full batches in flight.
    prefetch: int = 256
    retry_delays_ms: list[int] = Field(default_factory=lambda: [1_000, 10_000, 60_000, 600_000])
    max_attempts: int = 5
    relay_batch_size: int = 200
    relay_poll_seconds: float = 2.0

    # The public keys tokens may be signed with, ``<kid>:<base64url>`` comma-separated
    # (koppel_shared.auth). Public, so a plain string; no service holds a private key.
    token_public_keys: str = f"{DEV_TOKEN_PUBLIC_KEYS},{DEV_SYNC_TOKEN_PUBLIC_KEY}"
    jwt_issuer: str = "koppel"
    encryption_keys: SecretStr = SecretStr(DEV_ENCRYPTION_KEY)
    # Honour tokens only for registered tenants (koppel_shared.tenants). Only a service's own
    # test suite, which has no sync-svc to register tenants, may switch it off.
    known_tenants_only: bool = True

    api_host: str = "127.0.0.1"
    api_port: int = 8000

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        own = EnvSettingsSource(settings_cls, env_prefix=cls.service_prefix)
        common = _CommonEnv(settings_cls, env_prefix=COMMON_PREFIX)
        if cls.service_prefix == COMMON_PREFIX:
            return (init_settings, common, file_secret_settings)
        return (init_settings, own, common, file_secret_settings)

    @field_validator("token_public_keys")
    @classmethod
    def _public_keys_parse(cls, value: str) -> str:
        PublicKeys.parse(value)
        return value

    @property
    def public_keys(self) -> PublicKeys:
        return PublicKeys.parse(self.token_public_keys)

    def derived_key(self, purpose: str) -> bytes:
        """A key for one local purpose (signing a CSRF value, an OAuth state), derived from the
        current encryption key so that no purpose shares a key with another or with encryption."""
        first = self.encryption_keys.get_secret_value().split(",")[0].strip()
        return hmac.new(first.encode(), f"koppel:{purpose}".encode(), hashlib.sha256).digest()

    @model_validator(mode="after")
    def _known_tenants_only_outside_tests(self) -> KoppelSettings:
        if not self.known_tenants_only and self.environment != "test":
            raise ValueError("known_tenants_only can only be switched off with environment=test")
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> KoppelSettings:
        if self.environment == "dev":
            return self
        bad = [
            name for name, value in self if isinstance(value, SecretStr) and _is_placeholder(value.get_secret_value())
        ]
        if self.public_keys.kids & {DEV_KID, DEV_SYNC_KID}:
            bad.append("token_public_keys")
        if bad:
            raise ValueError(
                f"placeholder secrets are only allowed with environment=dev; set real values for: "
                f"{', '.join(sorted(bad))}"
            )
        return self

    @property
    def is_dev(self) -> bool:
        return self.environment == "dev"


class IssuerSettings(KoppelSettings):
    """Settings of the one place that issues tokens: the ``koppel`` command. Only here is there a
    private key (``KOPPEL_TOKEN_SIGNING_KEY``); its public key must be in every verifier's
    ``KOPPEL_TOKEN_PUBLIC_KEYS``."""

    token_signing_key: SecretStr = SecretStr(DEV_TOKEN_SIGNING_KEY)

    @field_validator("token_signing_key")
    @classmethod
    def _signing_key_parses(cls, value: SecretStr) -> SecretStr:
        SigningKey.parse(value.get_secret_value())
        return value

    @property
    def signing_key(self) -> SigningKey:
        return SigningKey.parse(self.token_signing_key.get_secret_value())


def dev_service_token(service: str) -> SecretStr:
    """The service token a service uses in dev (signed with the public development key)."""
    key = SigningKey.parse(DEV_TOKEN_SIGNING_KEY)
    return SecretStr(issue_service_token(key, service, ttl=timedelta(days=3650)))


def _is_placeholder(value: str) -> bool:
    parts = [p.strip() for p in value.split(",")]
    if token_kid(value) in (DEV_KID, DEV_SYNC_KID):
        return True
    return any(p in PLACEHOLDERS or "change-me" in p or "changeme" in p for p in parts)
