"""What mandate-svc consumes from the broker: sync-svc's mandate-feed messages and the results
of mandate commands that Twikey refused."""

from __future__ import annotations

from collections.abc import Sequence

from koppel_shared.db import UnitOfWork
from koppel_shared.events import Envelope
from koppel_shared.events.twikey import TwikeyCommandFailed, TwikeyMandateChanged
from koppel_shared.logging import log_context
from koppel_shared.messaging.inbox import ConsumerSpec
from koppel_shared.messaging.ping import ping_consumer
from koppel_shared.service import Runtime
from mandate_svc.domain.model import FeedMessage
from mandate_svc.service_layer import mandates


def feed_message(data: TwikeyMandateChanged) -> FeedMessage:
    debtor = data.debtor
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
        customer_number=debtor.customer_number if debtor else None,
        name=debtor.name if debtor else None,
        company_name=debtor.company_name if debtor else None,
        email=debtor.email if debtor else None,
        mobile=debtor.mobile if debtor else None,
        language=debtor.language if debtor else None,
        address=debtor.address if debtor else None,
        zip=debtor.zip if debtor else None,
        city=debtor.city if debtor else None,
        country=debtor.country if debtor else None,
    )


async def on_mandate_changed(envelope: Envelope, data: TwikeyMandateChanged, uow: UnitOfWork) -> None:
    with log_context(tenant_id=str(envelope.tenant_id), mandate_number=data.mandate_number):
        await mandates.apply_feed_message(uow, envelope, feed_message(data))


async def on_command_failed(envelope: Envelope, data: TwikeyCommandFailed, uow: UnitOfWork) -> None:
    with log_context(tenant_id=str(envelope.tenant_id), mandate_number=data.mandate_number):
        await mandates.record_command_failure(uow, envelope, data.command, data.mandate_number, data.code, data.message)


def consumers(runtime: Runtime) -> Sequence[ConsumerSpec]:
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
