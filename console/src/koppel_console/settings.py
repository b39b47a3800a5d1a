"""Console settings: where each service's API is (``KOPPEL_CONSOLE_*`` then ``KOPPEL_*``)."""

from __future__ import annotations

from koppel_shared.settings import KoppelSettings


class Settings(KoppelSettings):
    service_prefix = "KOPPEL_CONSOLE_"

    api_port: int = 8100
    mandate_url: str = "http://127.0.0.1:8101"
    collection_url: str = "http://127.0.0.1:8102"
    sync_url: str = "http://127.0.0.1:8103"
    bookkeeping_url: str = "http://127.0.0.1:8104"
    notify_url: str = "http://127.0.0.1:8105"
    # The console asks the broker directly for dead letters, like `koppel dlq`.
    services: tuple[str, ...] = ("mandate", "collection", "sync", "bookkeeping", "notify")
