"""Facts sync-svc learned from Twikey (feeds, webhooks, command results), published for the
other services. Every feed-derived event carries ``twikey_event_id`` — Twikey's own identity for
the message (feed name + EvtId/seq) — and sync-svc derives the envelope id from it
(``twikey_event_uuid``), so a feed reset that replays a message produces the same event id and
the consumers' inbox drops it. Amounts are integer cents."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from koppel_shared.debtor import Debtor as Debtor  # the debtor events carry
from koppel_shared.events.registry import EventData, event_type

TWIKEY_NAMESPACE = uuid.UUID("6f1c1f0e-8f47-4c55-9a38-4b9d2f3f7a10")


def twikey_event_uuid(tenant_id: uuid.UUID | str, twikey_event_id: str) -> uuid.UUID:
    """The deterministic envelope id for a Twikey feed message of a tenant."""
    return uuid.uuid5(TWIKEY_NAMESPACE, f"{tenant_id}/{twikey_event_id}")


@event_type("twikey.mandate.changed", version=1)
class TwikeyMandateChanged(EventData):
    """One message of the mandate feed. ``change`` tells which kind:
    signed (new mandate, including one signed directly at Twikey), updated (amendment; also
    suspend/resume, see ``suspended``), cancelled (``reason`` holds Twikey's CxlRsn)."""

    twikey_event_id: str
    feed_seq: int
    event_time: datetime
    mandate_number: str
    change: Literal["signed", "updated", "cancelled"]
    scheme: Literal["CORE", "B2B"] | None = None
    state: str | None = None
    suspended: bool | None = None
    iban: str | None = None
    bic: str | None = None
    debtor: Debtor | None = None
    # The debtor's own maximum per collection: 0 = no maximum (Twikey's MaxAmt "0"),
    # None = this message did not say.
    max_amount_cents: int | None = None
    signature_date: date | None = None
    sign_method: str | None = None
    sign_place: str | None = None
    signer: str | None = None
    reason: str | None = None
    template_id: str | None = None
    contract_number: str | None = None


@event_type("twikey.transaction.changed", version=1)
class TwikeyTransactionChanged(EventData):
    """One entry of the transaction feed. ``reference`` is what we sent as ``ref`` (the
    collection id). A reversal after PAID arrives as a later entry for the same transaction with
    state ERROR/UNPAID and a ``bank_error`` code; ``reversal`` marks that case."""

    twikey_event_id: str
    feed_seq: int
    transaction_id: str
    reference: str | None = None
    mandate_number: str | None = None
    amount_cents: int
    state: Literal["OPEN", "PAID", "ERROR", "UNPAID", "PENDING", "CANCELLED"] | str
    final: bool = False
    reversal: bool = False
    bank_error: str | None = None
    bank_message: str | None = None
    booked_at: datetime | None = None
    message: str | None = None


@event_type("twikey.paylink.changed", version=1)
class TwikeyPaylinkChanged(EventData):
    """One entry of the pay-link feed: paid, expired, ... ``mandate_number`` is set when the
    debtor also signed a mandate through the link."""

    twikey_event_id: str
    feed_seq: int
    paylink_id: str
    reference: str | None = None
    state: str
    amount_cents: int | None = None
    mandate_number: str | None = None


@event_type("twikey.transaction.created", version=1)
class TwikeyTransactionCreated(EventData):
    """Result of a ``sync.collect_requested`` command: Twikey accepted the transaction."""

    collection_id: str
    transaction_id: str
    mandate_number: str
    amount_cents: int


@event_type("twikey.transaction.refused", version=1)
class TwikeyTransactionRefused(EventData):
    """Result of a ``sync.collect_requested`` command: Twikey refused it (``code`` is Twikey's
    ApiErrorCode, e.g. err_invalid_mandate); or retries ran out (``code`` = unavailable)."""

    collection_id: str
    mandate_number: str
    code: str
    message: str


@event_type("twikey.paylink.created", version=1)
class TwikeyPaylinkCreated(EventData):
    reference: str
    paylink_id: str
    url: str


@event_type("twikey.command.failed", version=1)
class TwikeyCommandFailed(EventData):
    """A mandate command (cancel, suspend, resume) failed at Twikey; the requester shows it."""

    command: str
    mandate_number: str
    code: str
    message: str
    reference: str | None = None  # for commands about something else than a mandate (pay links)
