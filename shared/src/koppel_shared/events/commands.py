"""Commands other services send to sync-svc through the outbox and the broker (routing key =
type). sync-svc carries them out against Twikey and answers with ``twikey.*`` events. The
synchronous one — inviting a mandate, because the ERP wants the sign URL in its response — is an
internal HTTP call instead (see sync-svc's ``/internal`` API)."""

from __future__ import annotations

from datetime import date
from typing import Literal

from koppel_shared.debtor import Debtor
from koppel_shared.events.registry import EventData, event_type


@event_type("sync.mandate_action_requested", version=1)
class MandateActionRequested(EventData):
    mandate_number: str
    action: Literal["cancel", "suspend", "resume", "remind"]
    reason: str | None = None


class CollectItem(EventData):
    collection_id: str
    mandate_number: str
    amount_cents: int
    message: str
    reference: str
    requested_date: date | None = None


@event_type("sync.collect_requested", version=1)
class CollectRequested(EventData):
    """Create these transactions at Twikey (bulk where possible). The Idempotency-Key sent to
    Twikey is derived from ``collection_id``, so a retried command never collects twice."""

    items: list[CollectItem]


@event_type("sync.paylink_requested", version=1)
class PaylinkRequested(EventData):
    reference: str
    amount_cents: int
    message: str
    customer: Debtor
    template_id: str | None = None
