"""Pure rules: signature, money, feed messages, reset position, invite form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from koppel_shared.debtor import InviteDebtor
from sync_svc.domain import feed_messages, signature
from sync_svc.domain.feeds import PageRecord, cursor_for_reset
from sync_svc.domain.invite import InviteRequest, invite_form
from sync_svc.domain.money import to_cents, to_euros


def test_signature_matches_twikeys_published_test_vector() -> None:
    assert signature.sign("1234", "abc=123&name=abc") == (
        "55261CBC12BF62000DE1371412EF78C874DBC46F513B078FB9FF8643B2FD4FC2"
    )


def test_signature_is_accepted_over_the_decoded_or_the_raw_query_and_refused_otherwise() -> None:
    raw = "type=contract&mandateNumber=A%20B"
    assert signature.verify("k", raw, signature.sign("k", "type=contract&mandateNumber=A B"))
    assert signature.verify("k", raw, signature.sign("k", raw).lower())
    assert not signature.verify("k", raw, signature.sign("other", raw))
    assert not signature.verify("k", raw, None)


@pytest.mark.parametrize(
    ("wire", "signed"),
    [
        (b"type=contract&reason=no+way", "type=contract&reason=no way"),  # a space sent as +
        (b"type=contract&reason=no%20way", "type=contract&reason=no way"),  # ... or as %20
        (b"type=payment&ref=A%2BB", "type=payment&ref=A+B"),  # a + inside a value
        (b"type=payment&ref=A%26B%3DC", "type=payment&ref=A&B=C"),  # & and = inside a value
        (b"type=payment&ref=Zo%C3%AB", "type=payment&ref=Zo\u00eb"),  # UTF-8, escaped
        (b"type=payment&ref=Zo\xc3\xab", "type=payment&ref=Zo\u00eb"),  # UTF-8, sent unescaped
    ],
)
def test_signature_over_any_form_twikeys_receivers_hash_is_accepted(wire: bytes, signed: str) -> None:
    as_received = wire.decode("latin-1")  # how the webhook entrypoint hands the query over
    assert signature.verify("k", as_received, signature.sign("k", signed))
    assert signature.verify("k", as_received, signature.sign("k", wire))  # the raw form
    assert not signature.verify("other", as_received, signature.sign("k", signed))


@pytest.mark.parametrize(("value", "cents"), [(10.0, 1000), ("49.99", 4999), (0.1, 10), ("6545.56", 654556)])
def test_twikey_amounts_become_integer_cents(value: object, cents: int) -> None:
    assert to_cents(value) == cents
    assert to_cents(to_euros(cents)) == cents


def test_a_signed_mandate_message_carries_bank_data_signature_and_no_limit_for_zero() -> None:
    event = feed_messages.mandate_changed(
        {
            "EvtId": 7,
            "EvtTime": "2026-01-05T09:59:12Z",
            "Mndt": {
                "MndtId": "KOP1",
                "LclInstrm": "CORE",
                "DbtrAcct": "BE68539007547034",
                "DbtrAgt": {"FinInstnId": {"BICFI": "GKCCBEBB"}},
                "MaxAmt": "0",
                "Dbtr": {"Nm": "An Peeters", "CtctDtls": {"EmailAdr": "an@example.be", "Othr": "C1"}},
                "SplmtryData": [
                    {"Key": "SignerDate#0", "Value": "2026-01-05T09:59:00Z"},
                    {"Key": "TemplateId", "Value": 1001},
                ],
            },
        }
    )
    assert (event.change, event.mandate_number, event.iban, event.bic) == (
        "signed",
        "KOP1",
        "BE68539007547034",
        "GKCCBEBB",
    )
    assert event.max_amount_cents == 0  # Twikey's "no maximum", passed on as 0
    assert event.signature_date is not None and event.signature_date.isoformat() == "2026-01-05"
    assert event.debtor is not None and event.debtor.customer_number == "C1"
    assert event.template_id == "1001"


def test_suspend_and_cancel_messages_are_told_apart() -> None:
    suspended = feed_messages.mandate_changed(
        {"EvtId": 8, "OrgnlMndtId": "KOP1", "AmdmntRsn": {"Rsn": "Suspended"}, "Mndt": {"MndtId": "KOP1"}}
    )
    cancelled = feed_messages.mandate_changed({"EvtId": 9, "OrgnlMndtId": "KOP1", "CxlRsn": {"Rsn": "MD01"}})
    assert (suspended.change, suspended.suspended, suspended.state) == ("updated", True, "SUSPENDED")
    assert (cancelled.change, cancelled.reason, cancelled.state) == ("cancelled", "MD01", "CANCELLED")


def test_a_failed_entry_after_paid_is_a_reversal() -> None:
    entry = {"id": 5, "seq": 20, "amount": 12.0, "state": "ERROR", "bkerror": "MD06", "ref": "c1"}
    assert feed_messages.transaction_changed(entry, paid_seq=12).reversal
    assert not feed_messages.transaction_changed(entry, paid_seq=None).reversal


def test_a_mandate_message_without_identity_is_bad_with_a_reason() -> None:
    with pytest.raises(feed_messages.BadMessage, match="EvtId"):
        feed_messages.mandate_changed({"Mndt": {"MndtId": "KOP1"}})


def test_reset_since_a_moment_goes_back_to_the_first_page_fetched_after_it() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    pages = [PageRecord(100, t0 + timedelta(hours=2)), PageRecord(150, t0 + timedelta(hours=3))]
    assert cursor_for_reset(t0 + timedelta(hours=1), pages) == 100
    assert cursor_for_reset(None, pages) == 0
    assert cursor_for_reset(t0 + timedelta(hours=5), []) is None


def test_invite_form_uses_the_template_and_sends_the_invite_only_by_email() -> None:
    by_mail = invite_form(
        InviteRequest(reference="m1", scheme="CORE", delivery="email", debtor=InviteDebtor(name="An Peeters")), "1001"
    )
    by_link = invite_form(
        InviteRequest(reference="m1", scheme="CORE", delivery="link", debtor=InviteDebtor(company_name="Acme")), "1001"
    )
    assert by_mail == {"ct": "1001", "firstname": "An", "lastname": "Peeters", "token": "m1", "sendInvite": "true"}
    assert "sendInvite" not in by_link and by_link["companyName"] == "Acme"
