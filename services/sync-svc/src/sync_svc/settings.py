"""Settings of sync-svc: `KOPPEL_SYNC_*` first, then the common `KOPPEL_*`."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from koppel_shared.auth import SigningKey
from koppel_shared.settings import DEV_KID, DEV_SYNC_TOKEN_SIGNING_KEY, KoppelSettings


class Settings(KoppelSettings):
    service_prefix = "KOPPEL_SYNC_"
    own_prefix_only = frozenset({"token_signing_key"})

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/koppel_sync"
    api_port: int = 8103

    # The key the tokens made from the browser are signed with (``/v1/tokens``, ``POST
    # /v1/tenants``): sync-svc's own, a kid apart from the ``koppel`` command's; its public entry is
    # in every verifier's KOPPEL_TOKEN_PUBLIC_KEYS. Read from KOPPEL_SYNC_TOKEN_SIGNING_KEY only:
    # the common KOPPEL_TOKEN_SIGNING_KEY is the command's key and must never end up here.
    token_signing_key: SecretStr = SecretStr(DEV_SYNC_TOKEN_SIGNING_KEY)
    # How long the operator token handed out with a new tenant lasts.
    tenant_operator_token_days: int = Field(default=30, ge=1, le=730)

    # Where Twikey reaches us (the gateway); the webhook URL shown to operators is built from it.
    public_base_url: str = "http://127.0.0.1:8080"
    # Default Twikey base URL for a new connection (the sandbox is usually given explicitly).
    twikey_default_base_url: str = "https://api.twikey.com/creditor"

    twikey_timeout_seconds: float = 10.0
    twikey_retry_attempts: int = 5
    twikey_retry_initial_seconds: float = 0.2
    twikey_retry_max_wait_seconds: float = 30.0
    # An invite whose outcome is unknown (sent, no answer) and that a look-up does not find is sent
    # again only after this long: a request Twikey was still working on has surely ended by then.
    invite_settle_seconds: float = 60.0
    # Twikey sessions live 24 h; renew a little before, as Twikey's own SDKs do (23 h).
    twikey_session_max_age_seconds: float = 23 * 3600

    # The decrypted API key is cached this long per tenant for webhook signature checks.
    webhook_key_cache_seconds: float = 30.0
    # At most one NOTIFY per tenant and API process in this window; the worker polls anyway.
    webhook_notify_throttle_seconds: float = 0.05
    # Group commit of received webhooks: at most this many batches on their way to disk at once.
    webhook_store_flushers: int = 2

    # Worker: how often pending drain requests are looked for without a NOTIFY, and the
    # safety-net drain of every connected tenant in case webhooks were lost.
    drain_poll_seconds: float = 1.0
    safety_net_drain_seconds: float = 300.0
    drain_concurrency: int = 4
    # A tenant is drained again at the earliest this long after its last drain began: under a
    # stream of webhooks each drain then takes what arrived meanwhile in one go (a drain costs
    # about the same for one message as for a page), and a webhook after a quiet spell is
    # drained at once.
    drain_min_interval_seconds: float = Field(default=0.2, ge=0)
    # Transactions of one collect command are created with this many parallel calls.
    collect_concurrency: int = 8

    @field_validator("token_signing_key")
    @classmethod
    def _signing_key_is_syncs_own(cls, value: SecretStr) -> SecretStr:
        if SigningKey.parse(value.get_secret_value()).kid == DEV_KID:
            raise ValueError("sync-svc signs with a key of its own, not the koppel command's (another kid)")
        return value

    @property
    def signing_key(self) -> SigningKey:
        return SigningKey.parse(self.token_signing_key.get_secret_value())
