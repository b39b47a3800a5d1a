"""For suites that run sync-svc in-process (its own and other services' end-to-end tests)."""

from __future__ import annotations

from koppel_shared.testing.fixtures import settings_for_test
from sync_svc.settings import Settings


def sync_settings_for_test(
    database_url: str, broker_prefix: str, api_port: int, twikey_timeout_seconds: float = 2.0
) -> Settings:
    """sync-svc's settings with its API on ``api_port``: quick Twikey retries, drains looked for
    every 0.2 s, and no safety-net drain during a test."""
    return settings_for_test(
        Settings,
        database_url,
        broker_prefix,
        public_base_url=f"http://127.0.0.1:{api_port}",
        twikey_timeout_seconds=twikey_timeout_seconds,
        twikey_retry_initial_seconds=0.05,
        twikey_retry_max_wait_seconds=1.0,
        drain_poll_seconds=0.2,
        safety_net_drain_seconds=3600,
    )
