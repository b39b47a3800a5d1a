"""Settings of collection-svc: `KOPPEL_COLLECTION_*` first, then the common `KOPPEL_*`."""

from __future__ import annotations

from koppel_shared.settings import KoppelSettings


class Settings(KoppelSettings):
    service_prefix = "KOPPEL_COLLECTION_"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/koppel_collection"
    api_port: int = 8102
