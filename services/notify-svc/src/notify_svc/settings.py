"""Settings of notify-svc: `KOPPEL_NOTIFY_*` first, then the common `KOPPEL_*`."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from pydantic import Field, field_validator, model_validator

from koppel_shared.settings import KoppelSettings
from notify_svc.domain.breaker import BreakerPolicy
from notify_svc.domain.delivery import DEFAULT_SCHEDULE, DisablePolicy
from notify_svc.domain.urls import UrlPolicy


class Settings(KoppelSettings):
    service_prefix = "KOPPEL_NOTIFY_"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/koppel_notify"
    api_port: int = 8105

    # --- which URLs may be called (no SSRF)
    # http:// endpoints; None = only in dev mode.
    webhook_allow_http: bool | None = None
    # Networks allowed although not public, e.g. ["10.20.0.0/16"] for an ERP on a private link.
    webhook_allowed_networks: list[str] = Field(default_factory=list)

    # --- delivery
    # Delays (s) after each failed attempt; the delivery fails after the last one.
    delivery_schedule_seconds: list[float] = Field(default_factory=lambda: list(DEFAULT_SCHEDULE))
    delivery_jitter: float = 0.2
    delivery_timeout_seconds: float = 10.0
    delivery_connect_timeout_seconds: float = 3.0
    # Attempts in flight in one worker, at most ``..._per_endpoint`` to any one endpoint. The
    # main budget is for attempts that are answered promptly; probes of paused endpoints and
    # attempts unanswered after ``delivery_slow_after_seconds`` use the slow budget (while it has
    # room), so endpoints that hang, however many, do not take slots from the ones that answer.
    delivery_max_in_flight: int = 256
    delivery_max_in_flight_per_endpoint: int = 4
    delivery_max_slow_in_flight: int = Field(64, ge=1)  # at least one, or a paused endpoint is never probed
    delivery_slow_after_seconds: float = Field(2.0, gt=0)
    # Circuit breaker per endpoint (``domain.breaker``): after this many failed attempts in a row
    # the endpoint is paused, then probed with one delivery at a time (0 turns it off).
    delivery_breaker_failures: int = Field(3, ge=0)
    delivery_breaker_cooldown_seconds: float = Field(10.0, gt=0)
    delivery_breaker_max_cooldown_seconds: float = Field(300.0, gt=0)
    # The delivery worker's own threads for name resolution (not asyncio's few default ones).
    delivery_dns_threads: int = 16
    delivery_poll_seconds: float = 1.0
    delivery_claim_batch: int = 256
    # A claimed delivery is invisible to other workers for this long (a crashed worker's claims
    # come back after it); must be well above the timeout.
    delivery_lease_seconds: float = 60.0
    disable_after_failures: int = 10
    disable_after_failing_seconds: float = 3 * 24 * 3600
    secret_rotation_grace_seconds: float = 24 * 3600

    # --- event feed
    event_retention_days: float = 30.0
    cleanup_interval_seconds: float = 3600.0
    feed_default_limit: int = 100
    feed_max_limit: int = 500

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for n in value:
            ipaddress.ip_network(n, strict=False)
        return value

    @model_validator(mode="after")
    def _lease_above_timeout(self) -> Settings:
        if self.delivery_lease_seconds < 2 * (self.delivery_timeout_seconds + self.delivery_connect_timeout_seconds):
            raise ValueError("delivery_lease_seconds must be at least twice the delivery timeouts")
        if not self.delivery_schedule_seconds:
            raise ValueError("delivery_schedule_seconds needs at least one delay")
        return self

    @property
    def url_policy(self) -> UrlPolicy:
        allow_http = self.is_dev if self.webhook_allow_http is None else self.webhook_allow_http
        return UrlPolicy.build(allow_http, self.webhook_allowed_networks)

    @property
    def breaker_policy(self) -> BreakerPolicy:
        return BreakerPolicy(
            self.delivery_breaker_failures,
            self.delivery_breaker_cooldown_seconds,
            self.delivery_breaker_max_cooldown_seconds,
        )

    @property
    def disable_policy(self) -> DisablePolicy:
        return DisablePolicy(self.disable_after_failures, timedelta(seconds=self.disable_after_failing_seconds))
