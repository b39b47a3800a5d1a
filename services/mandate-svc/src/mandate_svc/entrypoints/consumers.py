"""What mandate-svc consumes from the broker: sync-svc's mandate-feed messages and the results
of mandate commands that Twikey refused."""

from __future__ import annotations

from collections.abc import Sequence

from koppel_shared.db import UnitOfWork
from koppel_shared.debtor import Debtor
from koppel_shared.events import Envelope
from koppel_shared.events.twikey import TwikeyCommandFailed, TwikeyMandateChanged
from koppel_shared.logging import log_context
from koppel_shared.messaging.inbox import ConsumerSpec
from koppel_shared.messaging.ping import ping_consumer
from koppel_shared.service import Runtime
from mandate_svc.dependencies import Dependencies
from mandate_svc.domain.model import FeedMessage
from mandate_svc.service_layer import mandates
from mandate_svc.settings import Settings


def feed_message(data: TwikeyMandateChanged) -> FeedMessage:
    return FeedMessage(
        twikey_event_id=data.twikey_event_id,
        feed_seq=data.feed_seq,
        event_time=data.event_time,
        mandate_number=data.mandate_number,
        change=data.change,
        scheme=data.scheme,
        state=data.state,
        suspended=data.suspended,
        iban=data.iban,
        bic=data.bic,
        max_amount_cents=data.max_amount_cents,
        signature_date=data.signature_date,
        sign_method=data.sign_method,
        sign_place=data.sign_place,
        signer=data.signer,
        reason=data.reason,
        contract_number=data.contract_number,
        **(data.debtor or Debtor()).fields(),
    )


async def on_mandate_changed(envelope: Envelope, data: TwikeyMandateChanged, uow: UnitOfWork) -> None:
    with log_context(tenant_id=str(envelope.tenant_id), mandate_number=data.mandate_number):
        await mandates.apply_feed_message(uow, envelope, feed_message(data))


async def on_command_failed(envelope: Envelope, data: TwikeyCommandFailed, uow: UnitOfWork) -> None:
    with log_context(tenant_id=str(envelope.tenant_id), mandate_number=data.mandate_number):
        await mandates.record_command_failure(uow, envelope, data.command, data.mandate_number, data.code, data.message)


def consumers(runtime: Runtime[Settings], deps: Dependencies) -> Sequence[ConsumerSpec]:
    return [
        ping_consumer(),
        ConsumerSpec(
            purpose="twikey",
            bindings=("twikey.mandate.changed", "twikey.command.failed"),
            handlers={
                "twikey.mandate.changed": on_mandate_changed,
                "twikey.command.failed": on_command_failed,
            },
        ),
    ]
