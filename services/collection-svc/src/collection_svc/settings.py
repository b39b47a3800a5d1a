"""Settings of collection-svc: `KOPPEL_COLLECTION_*` first, then the common `KOPPEL_*`."""

from __future__ import annotations

from koppel_shared.settings import KoppelSettings


class Settings(KoppelSettings):
    service_prefix = "KOPPEL_COLLECTION_"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/koppel_collection"
    api_port: int = 8102
    # How often the scheduler looks for due collections when the last look found none.
    scheduler_interval_seconds: float = 30.0
    # Collections claimed per scheduler transaction (Twikey's bulk call takes ≤ 5000 per command).
    scheduler_batch_size: int = 5000
    scheduler_enabled: bool = True
    # How often the applier looks for staged Twikey transaction messages when idle.
    applier_interval_seconds: float = 0.2
