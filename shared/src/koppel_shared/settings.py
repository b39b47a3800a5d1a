"""Process settings, built once at the edge of a process and passed in.

Every service reads its own prefix first (``KOPPEL_MANDATE_DATABASE_URL``) and falls back to the
common prefix (``KOPPEL_DATABASE_URL``), so one environment file can serve all services while each
can still be pointed somewhere else. Secrets are ``SecretStr``; outside dev mode the placeholder
values that make local runs convenient are refused, so a forgotten variable fails at start-up
instead of in production.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# Valid values (a Fernet key must decode), but public: fine on a laptop, refused elsewhere.
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789abcdef"
DEV_ENCRYPTION_KEY = "ZGV2LW9ubHkta2V5LWNoYW5nZS1tZS0wMTIzNDU2Nzg="
PLACEHOLDERS = {DEV_JWT_SECRET, DEV_ENCRYPTION_KEY, "changeme", "change-me", "secret", ""}

COMMON_PREFIX = "KOPPEL_"


class KoppelSettings(BaseSettings):
    """Settings every Koppel process has. Subclasses set ``service_prefix``."""

    service_prefix: ClassVar[str] = COMMON_PREFIX
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

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
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
        common = EnvSettingsSource(settings_cls, env_prefix=COMMON_PREFIX)
        if cls.service_prefix == COMMON_PREFIX:
            return (init_settings, common, file_secret_settings)
        return (init_settings, own, common, file_secret_settings)

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
        if bad:
            raise ValueError(
                f"placeholder secrets are only allowed with environment=dev; set real values for: "
                f"{', '.join(sorted(bad))}"
            )
        return self

    @property
    def is_dev(self) -> bool:
        return self.environment == "dev"


def _is_placeholder(value: str) -> bool:
    parts = [p.strip() for p in value.split(",")]
    return any(p in PLACEHOLDERS or "change-me" in p or "changeme" in p for p in parts)
