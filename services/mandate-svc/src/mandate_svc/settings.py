"""Settings of mandate-svc: `KOPPEL_MANDATE_*` first, then the common `KOPPEL_*`."""

from __future__ import annotations

from pydantic import Field, SecretStr

from koppel_shared.settings import KoppelSettings, dev_service_token


class Settings(KoppelSettings):
    service_prefix = "KOPPEL_MANDATE_"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/koppel_mandate"
    api_port: int = 8101
    # sync-svc's internal API (KOPPEL_MANDATE_SYNC_URL, else KOPPEL_SYNC_URL as `koppel run` sets it).
    sync_url: str = "http://127.0.0.1:8103"
    # The service token `koppel token service --service mandate` issued for calls to sync-svc's
    # internal API (KOPPEL_MANDATE_SYNC_TOKEN). It holds scope `internal` only; this service holds
    # no key to sign tokens with.
    sync_token: SecretStr = Field(default_factory=lambda: dev_service_token("mandate"))
    # sync-svc retries Twikey itself; this bounds one invite call as the ERP waits for it.
    sync_timeout_seconds: float = 30.0
    sync_attempts: int = 3
    # One request per Idempotency-Key invites at a time: it holds the key this long at most (more
    # than sync_attempts × sync_timeout_seconds), and a concurrent duplicate waits this long for
    # its answer before it gets 409 request_in_progress with Retry-After.
    idempotency_lease_seconds: float = 120.0
    idempotency_wait_seconds: float = 10.0
    # An invite nobody signed expires after this many days (and is withdrawn at Twikey).
    invite_expiry_days: int = 30
    expiry_sweep_seconds: float = 3600.0
