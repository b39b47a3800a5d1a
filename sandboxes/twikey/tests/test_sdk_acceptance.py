"""Twikey's official Python SDK (twikey-api-python 0.2.3, unmodified) against the live sandbox."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote

import pytest
import twikey
from twikey.document import DocumentFeed
from twikey.paylink import PaylinkFeed
from twikey.transaction import TransactionFeed


class Documents(DocumentFeed):
    def __init__(self) -> None:
        self.new: list[dict] = []
        self.updated: list[tuple] = []
        self.cancelled: list[tuple] = []
        self.positions: list[str] = []

    def start(self, position, number_of_updates):
        self.positions.append(position)

    def new_document(self, doc, evt_time):
        self.new.append(doc)

    def updated_document(self, original_doc_number, doc, reason, evt_time):
        self.updated.append((original_doc_number, doc, reason))

    def cancelled_document(self, doc_number, reason, evt_time):
        self.cancelled.append((doc_number, reason))


class Transactions(TransactionFeed):
    def __init__(self) -> None:
        self.entries: list[dict] = []

    def transaction(self, transaction):
        self.entries.append(transaction)


class Links(PaylinkFeed):
    def __init__(self) -> None:
        self.links: list[dict] = []

    def paylink(self, paylink):
        self.links.append(paylink)


@pytest.fixture
def sdk_creditor(sandbox, control, receiver_reset):
    return control.post("/creditors", json={"webhook_url": receiver_reset.url}).json()


def test_sdk_full_flow_against_sandbox(sandbox, control, receiver_reset, sdk_creditor):
    api_key = sdk_creditor["api_key"]
    core = sdk_creditor["templates"]["CORE"]
    client = twikey.TwikeyClient(api_key, base_url=sandbox.api, user_agent="koppel-tests/1.0")

    # login happens inside the first call; the SDK needs Authorization and X-MERCHANT-ID headers
    invite = client.document.create(
        {"ct": core, "email": "jan@example.be", "firstname": "Jan", "lastname": "Peeters", "l": "nl"}
    )
    assert client.merchant_id == str(sdk_creditor["merchant_id"])
    mndt_id = invite["mndtId"]
    assert invite["url"] and invite["key"]

    # the debtor signs (control API); the SDK reads the mandate feed
    r = control.post(f"/mandates/{mndt_id}/sign", json={"iban": "BE16645348971174", "bic": "JVBABE22"})
    assert r.status_code == 200, r.text
    docs = Documents()
    client.document.feed(docs)
    assert [d["MndtId"] for d in docs.new] == [mndt_id]
    assert docs.new[0]["DbtrAcct"] == "BE16645348971174"
    assert docs.new[0]["Dbtr"]["Nm"] == "Jan Peeters"
    assert len(docs.positions) == 1

    # a second read finds nothing new: the feed is a server-side queue
    again = Documents()
    client.document.feed(again)
    assert again.new == []

    # update and cancel arrive as AmdmntRsn / CxlRsn messages
    client.document.update({"mndtId": mndt_id, "email": "jan.peeters@example.be"})
    later = Documents()
    client.document.feed(later)
    assert [(u[0], u[1]["Dbtr"]["CtctDtls"]["EmailAdr"]) for u in later.updated] == [
        (mndt_id, "jan.peeters@example.be")
    ]

    # transaction create + transaction feed
    entry = client.transaction.create({"mndtId": mndt_id, "message": "Invoice 2026-001", "amount": "49.99"})
    assert entry["mndtId"] == mndt_id and entry["amount"] == 49.99
    control.post(f"/transactions/{entry['id']}/paid")
    txs = Transactions()
    client.transaction.feed(txs)
    assert [(t["id"], t["state"]) for t in txs.entries] == [(entry["id"], "OPEN"), (entry["id"], "PAID")]

    # an SDK error for a mandate that does not exist
    with pytest.raises(twikey.client.TwikeyError) as err:
        client.document.cancel("NOPE", "test")
    assert err.value.get_code() == "err_no_contract"

    # the webhook the sandbox produced verifies with the SDK's own function
    hooks = receiver_reset.wait_for(2)
    signed = [h for h in hooks if parse_qs(h.query).get("event") == ["Sign"]]
    assert len(signed) == 1
    payload = unquote(signed[0].query)
    assert twikey.Webhook.verify_signature(payload, signed[0].headers["X-Signature"], api_key)
    assert not twikey.Webhook.verify_signature(payload, signed[0].headers["X-Signature"], "another-key")

    client.document.cancel(mndt_id, "Contract ended")
    gone = Documents()
    client.document.feed(gone)
    assert [(number, reason["Rsn"]) for number, reason in gone.cancelled] == [(mndt_id, "Contract ended")]
    assert gone.cancelled[0][1]["Orgtr"]["CtctDtls"]["EmailAdr"]


def test_sdk_paylink_and_sign(sandbox, control, sdk_creditor):
    client = twikey.TwikeyClient(sdk_creditor["api_key"], base_url=sandbox.api)
    link = client.paylink.create({"message": "Invoice 7", "amount": "12.50", "ref": "INV-7"})
    assert link["amount"] == 12.5 and link["url"]
    control.post(f"/paylinks/{link['id']}/pay", json={"method": "bancontact"})
    links = Links()
    client.paylink.feed(links)
    assert [(x["id"], x["state"], x["ref"]) for x in links.links] == [(link["id"], "paid", "INV-7")]

    signed = client.document.sign(
        {"ct": sdk_creditor["templates"]["CORE"], "method": "paper", "iban": "BE68539007547034",
         "firstname": "Els", "lastname": "Claes"}
    )  # fmt: skip
    assert signed["Msg"] == "OK" and signed["MndtId"]


def test_sdk_reports_bad_api_key(sandbox):
    client = twikey.TwikeyClient("not-a-key", base_url=sandbox.api)
    with pytest.raises(twikey.client.TwikeyError) as err:
        client.document.create({"ct": 1})
    assert err.value.get_code() == "err_no_login"
