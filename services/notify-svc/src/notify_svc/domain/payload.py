"""The JSON an ERP receives, by webhook and from the feed alike: the event envelope without
routing details. ``data`` is the resource's whole current state with its ``version``, so an ERP
that gets notifications out of order keeps the highest version and ignores the rest."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


def webhook_payload(
    *,
    event_id: str,
    event_type: str,
    version: int,
    tenant_id: str,
    occurred_at: datetime,
    correlation_id: str | None,
    data: dict[str, Any],
) -> str:
    body = {
        "id": event_id,
        "type": event_type,
        "version": version,
        "tenant_id": tenant_id,
        "occurred_at": occurred_at.isoformat(),
        "correlation_id": correlation_id,
        "data": data,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)
