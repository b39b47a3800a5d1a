"""The sandbox's webhooks checked against every official SDK's verification (re-implemented in
``twikey_sandbox.sdk_webhooks``) and against the installed Python SDK itself."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote

import twikey

from twikey_sandbox import sdk_webhooks

ALL_AGREE = dict.fromkeys(sdk_webhooks.VERIFIERS, True)
SEPA_SPECIALS = "KOP/26-01:(A).B,C'D?E"  # every SEPA special character but space and +


def _wire(hook) -> bytes:  # type: ignore[no-untyped-def]
    return hook.query.encode("latin-1")  # http.server keeps the request line's bytes as latin-1


def test_the_sdk_verifiers_accept_the_published_test_vector_and_refuse_another_key() -> None:
    vector = "55261CBC12BF62000DE1371412EF78C874DBC46F513B078FB9FF8643B2FD4FC2"
    assert sdk_webhooks.verdicts("1234", b"abc=123&name=abc", vector) == ALL_AGREE
    assert not any(sdk_webhooks.verdicts("4321", b"abc=123&name=abc", vector).values())


def test_webhooks_without_escapes_pass_every_sdk_even_with_sepa_special_characters(creditor, control, receiver_reset):
    mndt = creditor.invite(mandateNumber=SEPA_SPECIALS)["mndtId"]
    assert creditor.client.delete("/mandate", params={"mndtId": mndt, "rsn": "gone"}).status_code == 200
    control.post("/webhooks/test", json={"api_key": creditor.api_key})
    hooks = receiver_reset.wait_for(3)
    assert len(hooks) == 3
    assert parse_qs(hooks[0].query)["mandateNumber"] == [SEPA_SPECIALS]
    for hook in hooks:
        assert "%" not in hook.query  # nothing needed escaping, so raw and decoded are one string
        assert sdk_webhooks.verdicts(creditor.api_key, _wire(hook), hook.headers["X-Signature"]) == ALL_AGREE
        assert twikey.Webhook.verify_signature(unquote(hook.query), hook.headers["X-Signature"], creditor.api_key)


def test_a_value_that_needs_escaping_is_signed_decoded_as_twikeys_own_receivers_verify(
    creditor, control, receiver_reset
):
    ref = "Zoë & Söhne=1 +2"  # space, &, =, + and UTF-8 inside one value
    link = creditor.client.post("/payment/link", data={"title": "Invoice 7", "amount": "12.50", "remittance": ref})
    assert link.status_code == 200, link.text
    control.post(f"/paylinks/{link.json()['id']}/pay", json={})
    control.get("/webhooks", params={"api_key": creditor.api_key, "wait": True})  # none left in flight
    [hook] = [h for h in receiver_reset.received if "ref=" in h.query]
    sig = hook.headers["X-Signature"]
    assert "+" not in hook.query and parse_qs(hook.query)["ref"] == [ref]

    verdicts = sdk_webhooks.verdicts(creditor.api_key, _wire(hook), sig)
    # Twikey's own receivers (Python, PHP; also the Odoo module) decode first: they pass.
    assert verdicts["python"] and verdicts["php"]
    # Go and Node hash what they are given: a receiver that decodes first passes...
    assert sdk_webhooks.go(creditor.api_key, _wire(hook), sig, decoded=True)
    assert sdk_webhooks.node(creditor.api_key, _wire(hook), sig, decoded=True)
    # ...while the raw query (Java's documented getQueryString()) does not match.
    assert not verdicts["java"] and not verdicts["go"] and not verdicts["node"]
    assert twikey.Webhook.verify_signature(unquote(hook.query), sig, creditor.api_key)
