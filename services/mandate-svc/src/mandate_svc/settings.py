"""Settings of mandate-svc: `KOPPEL_MANDATE_*` first, then the common `KOPPEL_*`."""

from __future__ import annotations

from koppel_shared.settings import KoppelSettings


class Settings(KoppelSettings):
    service_prefix = "KOPPEL_MANDATE_"

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/koppel_mandate"
    api_port: int = 8101
