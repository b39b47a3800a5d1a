"""Seeding at scale, pay links, reset."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx


def test_seed_100k_mandates_and_transactions(creditor, control):
    control.patch(f"/creditors/{creditor.api_key}", json={"feed_page_size": 5000})
    r = control.post("/seed", json={"api_key": creditor.api_key, "mandates": 100_000, "transactions": 100_000})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mandates"] == 100_000 and body["transactions"] == 100_000
    positions = control.get(f"/creditors/{creditor.api_key}/feeds").json()
    assert positions["mandate"]["pending"] == 100_000 and positions["transaction"]["pending"] == 100_000
    detail = creditor.client.get("/mandate/detail", params={"mndtId": body["last_mandate"]})
    assert detail.headers["X-STATE"] == "SIGNED"
    iban = detail.json()["Mndt"]["DbtrAcct"]
    assert (int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97) == 1
    page = creditor.client.get("/mandate").json()["Messages"]
    assert len(page) == 5000 and page[0]["Mndt"]["MndtId"] == body["first_mandate"]
    # seeded transactions behave like real ones
    assert control.post(f"/transactions/{body['last_transaction']}/paid").json()["state"] == "PAID"
    listed = control.get("/mandates", params={"api_key": creditor.api_key, "limit": 3}).json()
    assert listed["total"] == 100_000 and len(listed["items"]) == 3


def test_seed_paid_transactions_feed_a_paid_entry_after_each_creation(creditor, control):
    r = control.post("/seed", json={"api_key": creditor.api_key, "mandates": 1, "transactions": 3, "paid": True})
    assert r.status_code == 200, r.text
    entries = creditor.client.get("/transaction", params=[("include", "seq")]).json()["Entries"]
    assert [e["state"] for e in entries] == ["OPEN", "PAID"] * 3
    assert entries[1]["id"] == r.json()["first_transaction"] and entries[1]["bkamount"] == 25.0


def test_paylink_paid_with_signing_feeds_both_feeds(creditor, control, receiver_reset):
    r = creditor.client.post(
        "/payment/link",
        data={"title": "Invoice 9", "amount": "19.95", "ct": creditor.core, "email": "p@example.be", "ref": "INV-9"},
        headers={"Idempotency-Key": "pl-1"},
    )
    link = r.json()
    assert (link["amount"], link["msg"], link["ref"], link["state"]) == (19.95, "Invoice 9", "INV-9", "created")
    dup = creditor.client.post("/payment/link", data={"title": "x", "amount": "1"}, headers={"Idempotency-Key": "pl-1"})
    assert dup.status_code == 409
    assert creditor.client.get("/payment/link/feed").json()["Links"] == []  # default: paid only
    paid = control.post(f"/paylinks/{link['id']}/pay", json={"method": "ideal", "sign": True,
                                                              "iban": "NL91ABNA0417164300"})  # fmt: skip
    mndt = paid.json()["mndt_id"]
    feed = creditor.client.get("/payment/link/feed", params={"include": "meta"}).json()["Links"]
    assert [(x["id"], x["state"], x["meta"]["sdd"]) for x in feed] == [(link["id"], "paid", mndt)]
    msgs = creditor.drain("/mandate", "Messages")
    assert [(m["Mndt"]["MndtId"], m["Mndt"]["DbtrAcct"]) for m in msgs] == [(mndt, "NL91ABNA0417164300")]
    hooks = [parse_qs(h.query) for h in receiver_reset.wait_for(2)]
    assert {"type": ["payment"], "id": [str(link["id"])], "ref": ["INV-9"]} in hooks
    status = creditor.client.get("/payment/link", params={"id": link["id"]}).json()["Links"]
    assert status[0]["state"] == "paid"
    all_changes = creditor.client.get(
        "/payment/link/feed", params={"all": "true"}, headers={"X-RESUME-AFTER": "0"}
    ).json()["Links"]
    assert [x["state"] for x in all_changes] == ["created", "paid"]


def test_paylink_pay_page(creditor):
    link = creditor.client.post("/payment/link", data={"message": "Old name field", "amount": "5"}).json()
    assert "5.00" in httpx.get(link["url"]).text
    assert "paid" in httpx.post(link["url"], data={"action": "pay"}).text


def test_paylink_validation(creditor):
    assert creditor.client.post("/payment/link", data={"amount": "5"}).json()["code"] == "err_msg_missing"
    assert creditor.client.post("/payment/link", data={"title": "t"}).json()["code"] == "err_invalid_amount"
    bad = creditor.client.post("/payment/link", data={"title": "t", "amount": "1", "email": "nope"})
    assert bad.json()["code"] == "err_invalid_email"


def test_two_apps_do_not_share_state():
    from twikey_sandbox import create_app

    a, b = create_app(api_key="A"), create_app(api_key="B")
    assert a.state.sandbox is not b.state.sandbox
    assert list(a.state.sandbox.creditors) == ["A"] and list(b.state.sandbox.creditors) == ["B"]


def test_payment_methods_answers_for_the_keys_own_templates_only(creditor, control):
    for ct in (creditor.core, creditor.b2b):
        r = creditor.client.get("/payment/methods", params={"ct": ct})
        assert r.status_code == 200, r.text
        assert isinstance(r.json(), dict)
    other = control.post("/creditors", json={}).json()["templates"]["CORE"]
    for params in ({"ct": other}, {"ct": "abc"}, {}):
        r = creditor.client.get("/payment/methods", params=params)
        assert r.status_code == 400 and r.headers["ApiErrorCode"] == "err_no_such_ct", (params, r.text)
