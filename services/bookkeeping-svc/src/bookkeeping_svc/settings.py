"""Settings of bookkeeping-svc: `KOPPEL_BOOKKEEPING_*` first, then the common `KOPPEL_*`.

The Twinfield client is written against the real API; only the login URL differs between
Twinfield (`https://login.twinfield.com`) and the sandbox. The cluster URL is never configured:
it comes from access-token validation, as Twinfield prescribes.
"""

from __future__ import annotations

from pydantic import Field, SecretStr

from koppel_shared.settings import KoppelSettings, dev_service_token

TWINFIELD_SCOPES = "openid offline_access twf.organisation twf.organisationUser twf.user"


class Settings(KoppelSettings):
    service_prefix = "KOPPEL_BOOKKEEPING_"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/koppel_bookkeeping"
    api_port: int = 8104

    # OAuth client registered at developers.twinfield.com (the sandbox's default client here).
    twinfield_login_url: str = "http://127.0.0.1:8602"
    twinfield_client_id: str = "koppel-sandbox"
    twinfield_client_secret: SecretStr = SecretStr("koppel-sandbox-secret")
    twinfield_redirect_uri: str = "http://127.0.0.1:8104/v1/twinfield/oauth/callback"
    twinfield_scopes: str = TWINFIELD_SCOPES
    # Where the callback sends the operator's browser once connected (the console), if set.
    console_url: str | None = None

    # HTTP: reads may be retried freely; writes are never retried blindly (see adapters/twinfield/client.py).
    twinfield_timeout_seconds: float = 30.0
    # Refresh the access token this long before it expires.
    token_refresh_margin_seconds: float = 120.0
    # The settings form's look-ups (offices, an office's accounts) are kept this long per tenant.
    chart_cache_seconds: float = 60.0
    # Fair-use budget (credits per sliding minute) that all workers together keep to: Twinfield
    # gives a certified client 1,000 per client id and 500 per client id + organisation.
    twinfield_client_credits_per_minute: int = 1000
    twinfield_credits_per_minute: int = 500
    # Share of a minute's credits that may be spent at once; the rest is spread over the minute.
    twinfield_credit_burst: float = Field(default=0.04, gt=0, lt=1)
    # Twinfield counts over a sliding minute (tests shorten it, with the sandbox's window).
    twinfield_credit_window_seconds: float = Field(default=60.0, gt=0)
    # Share of each limit left unused: requests reach Twinfield a little after their credits
    # were reserved, which can bunch them.
    twinfield_credit_headroom: float = Field(default=0.05, ge=0, lt=1)
    # Longest wait on a 429 before the batch is put back for later.
    max_rate_limit_wait_seconds: float = 90.0

    # Booking engine.
    batch_size: int = 25  # Twinfield's advice: at most 25 items per request
    booker_poll_seconds: float = 1.0
    # Transient failures (5xx, timeouts before a write, 429 beyond the wait) back off and retry
    # by themselves this many times before the booking lands on the errors list.
    transient_attempts: int = 8
    transient_backoff_seconds: float = 5.0
    # The nightly sweep: every error and every open booking is retried once per interval.
    sweep_interval_seconds: float = 24 * 3600.0
    oauth_state_ttl_seconds: int = 900

    # Reconciliation. sync-svc's internal API gives Twikey's record (KOPPEL_BOOKKEEPING_SYNC_URL,
    # else KOPPEL_SYNC_URL as `koppel run` sets it).
    sync_url: str = "http://127.0.0.1:8103"
    # The service token `koppel token service --service bookkeeping` issued for calls to sync-svc's
    # internal API (KOPPEL_BOOKKEEPING_SYNC_TOKEN). It holds scope `internal` only; this service holds
    # no key to sign tokens with.
    sync_token: SecretStr = Field(default_factory=lambda: dev_service_token("bookkeeping"))
    sync_timeout_seconds: float = 60.0
    # The nightly run: one per tenant per night, at this hour (UTC) or later.
    reconcile_nightly: bool = True
    reconcile_hour_utc: int = Field(default=2, ge=0, le=23)
    # How often workers look for requested runs (and whether tonight's are due).
    reconcile_poll_seconds: float = 5.0
    # A nightly run looks back this many days (whole periods: from the first of that month).
    reconcile_lookback_days: int = Field(default=35, ge=1)
    # A running run whose worker has not reported for this long is taken over by another.
    reconcile_stale_seconds: float = 300.0
