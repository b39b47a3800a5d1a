"""Mandate lifecycle: invite, sign, detail headers, update/suspend/resume, cancel/delete, B2B."""

from __future__ import annotations

from urllib.parse import parse_qs

GOOD_IBAN = "BE16645348971174"  # ends in an even digit: the beta bank accepts it
ODD_IBAN = "BE49473211985171"


def _sign(control, mndt_id, **extra):
    r = control.post(f"/mandates/{mndt_id}/sign", json={"iban": GOOD_IBAN, "bic": "JVBABE22", **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_detail_headers_and_force_for_prepared(creditor, control):
    mndt = creditor.invite()["mndtId"]
    r = creditor.client.get("/mandate/detail", params={"mndtId": mndt})
    assert r.status_code == 400 and r.headers["ApiErrorCode"] == "err_no_contract"
    r = creditor.client.get("/mandate/detail", params={"mndtId": mndt, "force": "true"})
    assert r.headers["X-STATE"] == "PREPARED" and r.headers["X-COLLECTABLE"] == "false"
    assert "X-Rate-Limit-Remaining" in r.headers
    _sign(control, mndt, method="sms", place="Gent")
    r = creditor.client.get("/mandate/detail", params={"mndtId": mndt})
    assert r.headers["X-STATE"] == "SIGNED" and r.headers["X-COLLECTABLE"] == "true"
    mndt_json = r.json()["Mndt"]
    assert mndt_json["MndtId"] == mndt and mndt_json["LclInstrm"] == "CORE"
    extra = {d["Key"]: d["Value"] for d in mndt_json["SplmtryData"]}
    assert extra["SignerMethod#0"] == "sms" and extra["SignerPlace#0"] == "Gent"


def test_invite_validation_errors(creditor):
    r = creditor.client.post("/invite", data={"ct": 999999})
    assert r.status_code == 400 and r.json()["code"] == "err_no_such_ct"
    r = creditor.client.post("/invite", data={"ct": creditor.core, "iban": "BE00123"})
    assert r.headers["ApiError"] == "err_invalid_params" and r.json()["extra"] == "iban"


def test_invite_under_a_chosen_mandate_number_and_a_second_invite_under_it_is_refused(creditor):
    first = creditor.invite(mandateNumber="KOP0001")
    assert first["mndtId"] == "KOP0001"
    r = creditor.client.get("/mandate/detail", params={"mndtId": "KOP0001", "force": "true"})
    assert (r.status_code, r.headers["X-STATE"], r.json()["Mndt"]["MndtId"]) == (200, "PREPARED", "KOP0001")
    again = creditor.client.post("/invite", data={"ct": creditor.core, "mandateNumber": "KOP0001"})
    assert (again.status_code, again.headers["ApiErrorCode"], again.json()["extra"]) == (
        400,
        "err_invalid_params",
        "mandateNumber",
    )


def test_a_chosen_mandate_number_must_be_a_sepa_mandate_reference(creditor):
    for bad in ("K" * 36, "KOP_1", "KOPé1", "-KOP1", "KOP1/", "KOP@1"):
        r = creditor.client.post("/invite", data={"ct": creditor.core, "mandateNumber": bad})
        assert (r.status_code, r.json()["extra"]) == (400, "mandateNumber"), bad
    assert creditor.invite(mandateNumber="KOP 2/3-(4).5")["mndtId"] == "KOP 2/3-(4).5"


def test_invite_with_check_returns_the_existing_mandate(creditor):
    first = creditor.invite(customerNumber="C42")
    again = creditor.invite(customerNumber="C42", check="true")
    assert again["mndtId"] == first["mndtId"]
    assert creditor.invite(customerNumber="C42")["mndtId"] != first["mndtId"]


def test_suspend_and_resume_via_update(creditor, control):
    mndt = creditor.invite()["mndtId"]
    _sign(control, mndt)
    creditor.drain("/mandate", "Messages")
    assert creditor.client.post("/mandate/update", data={"mndtId": mndt, "state": "passive"}).status_code == 204
    r = creditor.client.get("/mandate/detail", params={"mndtId": mndt})
    assert r.headers["X-STATE"] == "SUSPENDED" and r.headers["X-COLLECTABLE"] == "false"
    tx = creditor.client.post("/transaction", data={"mndtId": mndt, "message": "x", "amount": "5"})
    assert tx.json()["code"] == "err_invalid_state"
    assert creditor.client.post("/mandate/update", data={"mndtId": mndt, "state": "active"}).status_code == 204
    msgs = creditor.drain("/mandate", "Messages")
    assert [m["AmdmntRsn"]["Rsn"] for m in msgs] == ["Suspended", "Resumed"]
    assert all(m["OrgnlMndtId"] == mndt for m in msgs)


def test_cancel_signed_then_again_is_invalid_state(creditor, control):
    mndt = creditor.invite()["mndtId"]
    _sign(control, mndt)
    r = creditor.client.delete("/mandate", params={"mndtId": mndt, "rsn": "MD01"})
    assert r.status_code == 200 and r.content == b""
    r = creditor.client.delete("/mandate", params={"mndtId": mndt, "rsn": "again"})
    assert r.headers["ApiErrorCode"] == "err_mandate_invalid_state"
    msgs = creditor.drain("/mandate", "Messages")
    assert msgs[-1]["CxlRsn"]["Rsn"] == "MD01" and "Mndt" not in msgs[-1]


def test_delete_prepared_mandate_removes_it_without_feed_message(creditor, receiver_reset):
    mndt = creditor.invite()["mndtId"]
    assert creditor.client.delete("/mandate", params={"mndtId": mndt, "rsn": "typo"}).status_code == 200
    r = creditor.client.get("/mandate/detail", params={"mndtId": mndt, "force": "true"})
    assert r.json()["code"] == "err_no_contract"
    assert creditor.drain("/mandate", "Messages") == []
    hooks = receiver_reset.wait_for(2)
    assert parse_qs(hooks[-1].query) == {
        "type": ["contract"],
        "mandateNumber": [mndt],
        "event": ["Invite"],
        "state": ["PREPARED"],
        "reason": ["removed"],
    }


def test_b2b_waits_for_debtor_bank_then_accepted(creditor, control, receiver_reset):
    mndt = creditor.invite(ct=creditor.b2b, companyName="Acme NV", coc="BE0123456749")["mndtId"]
    assert _sign(control, mndt)["state"] == "SIGNED_PENDING_DEBTOR_BANK"
    r = creditor.client.get("/mandate/detail", params={"mndtId": mndt, "force": "1"})
    assert r.headers["X-STATE"] == "SIGNED_PENDING_DEBTOR_BANK" and r.headers["X-COLLECTABLE"] == "false"
    assert creditor.drain("/mandate", "Messages") == []  # nothing in the feed until the bank agrees
    assert control.post(f"/mandates/{mndt}/bank/accept").json()["state"] == "SIGNED"
    msgs = creditor.drain("/mandate", "Messages")
    assert [(m["Mndt"]["MndtId"], m["Mndt"]["LclInstrm"]) for m in msgs] == [(mndt, "B2B")]
    events = [parse_qs(h.query) for h in receiver_reset.wait_for(3)]
    assert [(e["event"][0], e["state"][0]) for e in events] == [
        ("Invite", "PREPARED"), ("Sign", "SIGNED_PENDING_DEBTOR_BANK"), ("AcceptedBank", "SIGNED"),
    ]  # fmt: skip


def test_b2b_rejected_by_bank_is_cancelled(creditor, control, receiver_reset):
    mndt = creditor.invite(ct=creditor.b2b)["mndtId"]
    _sign(control, mndt)
    assert control.post(f"/mandates/{mndt}/bank/reject", json={"reason": "AC06"}).json()["state"] == "CANCELLED"
    msgs = creditor.drain("/mandate", "Messages")
    assert msgs[-1]["OrgnlMndtId"] == mndt and msgs[-1]["CxlRsn"]["Rsn"] == "AC06"
    assert parse_qs(receiver_reset.wait_for(3)[-1].query)["event"] == ["RejectBank"]


def test_b2b_bank_run_follows_beta_iban_rule(creditor, control):
    even = creditor.invite(ct=creditor.b2b)["mndtId"]
    odd = creditor.invite(ct=creditor.b2b)["mndtId"]
    _sign(control, even)
    control.post(f"/mandates/{odd}/sign", json={"iban": ODD_IBAN})
    result = control.post("/bank/run", json={"api_key": creditor.api_key}).json()
    assert (result["accepted"], result["rejected"]) == (1, 1)
    assert control.get(f"/mandates/{even}").json()["state"] == "SIGNED"
    assert control.get(f"/mandates/{odd}").json()["state"] == "CANCELLED"


def test_signed_b2b_cannot_be_edited_but_can_be_suspended(creditor, control):
    mndt = creditor.invite(ct=creditor.b2b)["mndtId"]
    _sign(control, mndt, bank_signature=False)
    r = creditor.client.post("/mandate/update", data={"mndtId": mndt, "email": "x@example.be"})
    assert r.headers["ApiErrorCode"] == "err_invalid_state"
    assert creditor.client.post("/mandate/update", data={"mndtId": mndt, "state": "passive"}).status_code == 204


def test_debtor_refuses(creditor, control, receiver_reset):
    mndt = creditor.invite()["mndtId"]
    assert control.post(f"/mandates/{mndt}/refuse", json={}).json()["state"] == "CANCELLED"
    assert parse_qs(receiver_reset.wait_for(2)[-1].query)["reason"] == ["refused"]
    assert control.post(f"/mandates/{mndt}/sign", json={"iban": GOOD_IBAN}).status_code == 400


def test_debtor_max_amount_is_in_the_feed_and_enforced(creditor, control):
    mndt = creditor.invite()["mndtId"]
    _sign(control, mndt)
    control.post(f"/mandates/{mndt}/max-amount", json={"max_amount": "100.00"})
    msgs = creditor.drain("/mandate", "Messages")
    assert msgs[-1]["Mndt"]["MaxAmt"] == "100.00"
    assert msgs[-1]["AmdmntRsn"]["Orgtr"]["CtctDtls"]["EmailAdr"] == "an@example.be"
    over = creditor.client.post("/transaction", data={"mndtId": mndt, "message": "big", "amount": "100.01"})
    assert over.status_code == 400 and over.json()["code"] == "err_billing_overdrawn"
    ok = creditor.client.post("/transaction", data={"mndtId": mndt, "message": "fine", "amount": "100.00"})
    assert ok.status_code == 200


def test_sign_endpoint_with_interactive_method_returns_url_and_waits(creditor, control):
    r = creditor.client.post("/sign", data={"ct": creditor.core, "method": "itsme", "email": "b@example.be"})
    body = r.json()
    assert body["Msg"] == "OK" and body["url"]
    assert control.get(f"/mandates/{body['MndtId']}").json()["state"] == "PREPARED"
    r = creditor.client.post("/sign", data={"ct": creditor.core, "method": "paper", "iban": GOOD_IBAN})
    assert control.get(f"/mandates/{r.json()['MndtId']}").json()["state"] == "SIGNED"


def test_mandate_query(creditor, control):
    mndt = creditor.invite(email="q@example.be")["mndtId"]
    _sign(control, mndt)
    r = creditor.client.get("/mandate/query", params={"email": "q@example.be"})
    assert [(c["mandateNumber"], c["state"], c["iban"]) for c in r.json()["Contracts"]] == [(mndt, "SIGNED", GOOD_IBAN)]


def test_sign_page_link_works(sandbox, creditor):
    import httpx

    inv = creditor.invite()
    page = httpx.get(inv["url"])
    assert page.status_code == 200 and inv["mndtId"] in page.text
    done = httpx.post(inv["url"], data={"action": "sign", "iban": GOOD_IBAN, "bic": "JVBABE22"})
    assert "SIGNED" in done.text
