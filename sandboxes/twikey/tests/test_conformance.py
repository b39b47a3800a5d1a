"""The sandbox held to Twikey's published description (development-kit docs/openapi.yaml, [OAS]):
documented error codes and statuses, SEPA limits, no erasing by empty fields, ids that survive
a reset."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from twikey_sandbox import create_app


def _error(r: httpx.Response) -> tuple[int, str, str]:
    return r.status_code, r.headers.get("ApiErrorCode", ""), r.json()["code"]


def test_an_unknown_route_answers_in_twikeys_error_shape(creditor):
    r = creditor.client.get("/no/such/endpoint")
    assert _error(r) == (404, "err_not_found", "err_not_found") and "detail" not in r.json()
    wrong_method = creditor.client.put("/invite")
    assert _error(wrong_method) == (405, "err_not_found", "err_not_found")


def test_pay_link_delete_is_200_with_an_empty_object_and_an_unknown_ref_is_err_not_found(creditor):
    link = creditor.client.post("/payment/link", data={"title": "Invoice 9", "amount": "9.99", "remittance": "INV-9"})
    assert link.status_code == 200, link.text
    gone = creditor.client.delete("/payment/link", params={"id": link.json()["id"]})
    assert (gone.status_code, gone.json()) == (200, {})
    assert _error(creditor.client.get("/payment/link", params={"ref": "INV-unknown"})) == (
        400, "err_not_found", "err_not_found"
    )  # fmt: skip


@pytest.mark.parametrize(("amount", "ok"), [("999999999.99", True), ("1000000000.00", False), ("1e12", False)])
def test_amounts_above_sepas_maximum_are_refused(creditor, mandate, amount, ok):
    r = creditor.client.post("/transaction", data={"mndtId": mandate, "message": "Big", "amount": amount})
    if ok:
        assert r.status_code == 200, r.text
    else:
        assert _error(r) == (400, "err_invalid_amount", "err_invalid_amount")


def test_an_end_to_end_id_is_at_most_35_sepa_characters(creditor, mandate):
    def create(ref: str) -> httpx.Response:
        form = {"mndtId": mandate, "message": "E2E", "amount": "5", "ref": ref, "refase2e": "true"}
        return creditor.client.post("/transaction", data=form)

    assert create("E" * 35).status_code == 200
    too_long = create("E" * 36)
    assert _error(too_long) == (400, "err_invalid_params", "err_invalid_params") and too_long.json()["extra"] == "ref"
    assert _error(create("INV_7")) == (400, "err_invalid_sepachars", "err_invalid_sepachars")


def test_unknown_transaction_ids_answer_the_code_each_endpoint_documents(creditor):
    update = creditor.client.put("/transaction", data={"id": "999999999", "message": "x"})
    action = creditor.client.post("/transaction/action", data={"id": "999999999", "action": "paid"})
    remove = creditor.client.delete("/transaction", params={"id": "999999999"})
    assert _error(update)[2] == _error(action)[2] == "err_no_transaction"
    assert _error(remove)[2] == "err_not_found"


def test_an_update_with_empty_fields_never_erases_a_signed_mandates_data(creditor, mandate, control):
    r = creditor.client.post("/mandate/update", data={"mndtId": mandate, "iban": "", "bic": "", "email": ""})
    assert r.status_code == 204, r.text
    kept = control.get(f"/mandates/{mandate}").json()
    assert (kept["iban"], kept["bic"], kept["email"]) == ("BE16645348971174", "JVBABE22", "an@example.be")
    assert creditor.drain("/mandate", "Messages") == []  # nothing changed, so no update message


@pytest.mark.parametrize("number", ["-KOP1", "KOP1.", "KOP1/", "K" * 36, "KOP_1", "KÖP1"])
def test_mandate_numbers_that_are_no_sepa_mandate_reference_are_refused(creditor, number):
    r = creditor.client.post("/invite", data={"ct": creditor.core, "mandateNumber": number})
    assert _error(r) == (400, "err_invalid_params", "err_invalid_params") and r.json()["extra"] == "mandateNumber"


def test_event_and_object_ids_keep_growing_across_a_sandbox_reset():
    with TestClient(create_app(api_key="RESET-KEY")) as client:

        def signed_mandate_and_transaction() -> tuple[int, int, str]:
            token = client.post("/creditor", data={"apiToken": "RESET-KEY"}).headers["Authorization"]
            api = {"Authorization": token}
            ct = client.get("/_sandbox/creditors/default").json()["templates"]["CORE"]
            mndt = client.post("/creditor/invite", data={"ct": ct}, headers=api).json()["mndtId"]
            client.post(f"/_sandbox/mandates/{mndt}/sign", json={"iban": "BE16645348971174"})
            form = {"mndtId": mndt, "message": "Invoice", "amount": "40"}
            tx = client.post("/creditor/transaction", data=form, headers=api).json()["Entries"][0]["id"]
            event = client.get("/creditor/mandate", headers=api).json()["Messages"][-1]["EvtId"]
            return event, tx, mndt

        before = signed_mandate_and_transaction()
        assert client.post("/_sandbox/reset").status_code == 200
        after = signed_mandate_and_transaction()
    assert after[0] > before[0] and after[1] > before[1]  # a client resuming from before still sees them
    assert after[2] != before[2]  # mandate numbers are never reused either


def test_transaction_query_lists_from_an_id_and_needs_from_id(creditor, mandate):
    def create(amount: str) -> int:
        form = {"mndtId": mandate, "message": "Q", "amount": amount}
        return int(creditor.client.post("/transaction", data=form).json()["Entries"][0]["id"])

    first, second = create("5"), create("6")
    r = creditor.client.get("/transaction/query", params={"fromId": second, "mndtId": mandate})
    assert [e["id"] for e in r.json()["Entries"]] == [second] and r.headers["X-Rate-Limit-Remaining"]
    assert [e["id"] for e in creditor.client.get("/transaction/query", params={"fromId": first}).json()["Entries"]] == [
        first, second
    ]  # fmt: skip
    missing = creditor.client.get("/transaction/query")
    assert _error(missing) == (400, "err_missing_params", "err_missing_params") and missing.json()["extra"] == "fromId"


def test_collect_names_a_missing_template_and_an_invalid_one_as_the_description_does(creditor):
    # [OAS] /collect: err_no_such_ct "No template specified", err_invalid_ct "Invalid template".
    assert _error(creditor.client.post("/collect", data={}))[2] == "err_no_such_ct"
    assert _error(creditor.client.post("/collect", data={"ct": "core"}))[2] == "err_invalid_ct"
    assert _error(creditor.client.post("/collect", data={"ct": "4242"}))[2] == "err_no_such_ct"


# Every maxLength [OAS] gives a form field of an endpoint the sandbox serves: one character more is
# refused with err_invalid_params naming the field, and nothing is created or changed.
MAX_LENGTHS = [
    ("/invite", "customerNumber", 50),
    ("/sign", "customerNumber", 50),
    ("/sign", "campaign", 250),
    ("/sign", "key", 36),
    ("/mandate/update", "firstname", 50),
    ("/mandate/update", "lastname", 50),
    ("/mandate/update", "companyName", 140),
    ("/mandate/update", "coc", 50),
    ("/mandate/update", "l", 2),
    ("/mandate/update", "customerNumber", 50),
    ("/transaction", "mndtId", 35),
    ("/transaction", "message", 140),
    ("/payment/link", "customerNumber", 50),
    ("/payment/link", "email", 70),
    ("/payment/link", "lastname", 50),
    ("/payment/link", "firstname", 50),
    ("/payment/link", "companyName", 140),
    ("/payment/link", "coc", 50),
    ("/payment/link", "l", 5),
    ("/payment/link", "mobile", 50),
    ("/payment/link", "title", 140),
    ("/payment/link", "address", 70),
    ("/payment/link", "city", 50),
    ("/payment/link", "zip", 12),
    ("/payment/link", "country", 2),
]


@pytest.mark.parametrize(("path", "name", "limit"), MAX_LENGTHS)
def test_fields_longer_than_the_description_allows_are_refused(creditor, mandate, control, path, name, limit):
    base = {
        "/invite": {"ct": str(creditor.core)},
        "/sign": {"ct": str(creditor.core), "method": "paper", "iban": "BE16645348971174"},
        "/mandate/update": {"mndtId": mandate},
        "/transaction": {"mndtId": mandate, "message": "Length", "amount": "5"},
        "/payment/link": {"title": "Length", "amount": "5"},
    }[path]
    too_long = "a" * (limit + 1) if name != "email" else "a" * (limit + 1 - len("@example.be")) + "@example.be"
    before = control.get(f"/creditors/{creditor.api_key}/feeds").json()
    r = creditor.client.post(path, data={**base, name: too_long})
    assert _error(r) == (400, "err_invalid_params", "err_invalid_params") and r.json()["extra"] == name
    assert control.get(f"/creditors/{creditor.api_key}/feeds").json() == before


def test_a_bulk_item_longer_than_the_description_allows_is_refused_alone(creditor, mandate, control):
    items = [
        {"mndtId": mandate, "message": "m" * 141, "amount": 5},
        {"mndtId": mandate, "message": "m" * 140, "amount": 5},
    ]
    batch = creditor.client.post("/transaction/bulk", json=items).json()["batchId"]
    control.post("/clock/advance", json={"seconds": 2})
    result = creditor.client.get("/transaction/bulk", params={"batchId": batch}).json()
    assert [(r["status"], r.get("code")) for r in result] == [("error", "err_invalid_params"), ("ok", None)]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("redirectUrl", "ftp://shop.example/done", "err_invalid_params"),  # "requires http:// or https://"
        ("sendInvite", "post", "err_invalid_params"),  # email | SMS | registeredEmail
        ("method", "cash", "err_invalid_params"),  # the description's list of methods
        ("expiry", "next week", "err_invalid_date"),  # "Invalid expiry date"
    ],
)
def test_pay_link_fields_outside_the_description_are_refused(creditor, control, field, value, code):
    before = control.get(f"/creditors/{creditor.api_key}/feeds").json()
    r = creditor.client.post("/payment/link", data={"title": "Invoice 5", "amount": "5", field: value})
    assert _error(r) == (400, code, code) and r.json()["extra"] == field
    assert control.get(f"/creditors/{creditor.api_key}/feeds").json() == before


def test_pay_link_fields_as_the_description_lists_them_are_taken(creditor):
    form = {"title": "Invoice 6", "amount": "6", "redirectUrl": "https://shop.example/done", "sendInvite": "SMS",
            "method": "bancontact", "expiry": "2030-01-31"}  # fmt: skip
    r = creditor.client.post("/payment/link", data=form)
    assert r.status_code == 200, r.text
    # [OAS] remittance: "Payment reference (aliased as ref). Defaults to title if empty"
    link = creditor.client.get("/payment/link", params={"id": r.json()["id"]}).json()["Links"][0]
    assert link["ref"] == "Invoice 6"


# Values outside what [OAS] lists or formats for a field the sandbox accepts are refused: the
# sandbox does not act on subscriptions, first payments or link expiry, but takes none malformed.
MALFORMED = [
    ("POST", "/invite", {"l": "xx"}, "err_invalid_lang", "l"),  # en/fr/nl/de/pt/es/it
    ("POST", "/invite", {"country": "BEL"}, "err_invalid_country", "country"),  # ISO, 2 letters
    ("POST", "/invite", {"ed": "soon"}, "err_invalid_date", "ed"),  # epoch ms
    ("POST", "/invite", {"ed": "99999999999999"}, "err_invalid_date", "ed"),  # max 12 months
    ("POST", "/invite", {"reminderDays": "often"}, "err_invalid_params", "reminderDays"),
    ("POST", "/invite", {"transactionAmount": "lots"}, "err_invalid_amount", "transactionAmount"),
    ("POST", "/invite", {"subscriptionAmount": "-5"}, "err_invalid_amount", "subscriptionAmount"),
    ("POST", "/invite", {"subscriptionRecurrence": "5d"}, "err_invalid_params", "subscriptionRecurrence"),
    ("POST", "/invite", {"subscriptionStart": "monday"}, "err_invalid_date", "subscriptionStart"),
    ("POST", "/invite", {"subscriptionStopAfter": "never"}, "err_invalid_params", "subscriptionStopAfter"),
    ("POST", "/invite", {"mobile": "0499 12 34 45"}, "err_invalid_params", "mobile"),  # +32499123445
    ("POST", "/mandate/update", {"mobile": "call me"}, "err_invalid_params", "mobile"),
    ("POST", "/mandate/update", {"l": "xx"}, "err_invalid_lang", "l"),
    ("POST", "/mandate/update", {"country": "B1"}, "err_invalid_country", "country"),
    ("GET", "/mandate/query", {"email": "an@example.be", "state": "ACTIVE"}, "err_invalid_params", "state"),
    ("GET", "/transaction/detail", {"state": "SETTLED"}, "err_invalid_params", "state"),
    ("POST", "/collect", {"colltndt": "next week"}, "err_invalid_date", "colltndt"),
]


@pytest.mark.parametrize(("method", "path", "fields", "code", "extra"), MALFORMED)
def test_values_the_description_does_not_list_or_format_are_refused(
    creditor, mandate, control, method, path, fields, code, extra
):
    base = {"/invite": {"ct": str(creditor.core)}, "/mandate/update": {"mndtId": mandate},
            "/collect": {"ct": str(creditor.core)}}.get(path, {})  # fmt: skip
    before = control.get(f"/creditors/{creditor.api_key}/feeds").json()
    form = {**base, **fields}
    r = creditor.client.request(method, path, **({"params": form} if method == "GET" else {"data": form}))
    assert _error(r) == (400, code, code) and r.json()["extra"] == extra
    assert control.get(f"/creditors/{creditor.api_key}/feeds").json() == before


def test_well_formed_optional_invite_fields_are_taken(creditor):
    ed = str(int((time.time() + 30 * 86400) * 1000))
    form = {"l": "fr", "country": "be", "ed": ed, "mobile": "+32499123445", "reminderDays": "5",
            "transactionAmount": "12.50",
            "subscriptionAmount": "9.99", "subscriptionRecurrence": "1m", "subscriptionStart": "2030-01-01",
            "subscriptionStopAfter": "12"}  # fmt: skip
    assert creditor.client.post("/invite", data={"ct": creditor.core, **form}).status_code == 200


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64).decode()


@pytest.mark.parametrize(
    ("fields", "extra"),
    [
        ({"method": "print"}, "method"),  # not among [OAS]'s sign methods
        ({"method": "digisign", "digsig": "not base64!"}, "digsig"),  # "Base64 encoded PNG signature"
        ({"method": "digisign", "digsig": base64.b64encode(b"GIF89a....").decode()}, "digsig"),
        (
            {"method": "digisign", "digsig": base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 150 * 1024).decode()},
            "digsig",
        ),
    ],
)
def test_sign_takes_only_the_methods_and_signature_images_the_description_names(creditor, control, fields, extra):
    before = control.get(f"/creditors/{creditor.api_key}/feeds").json()
    r = creditor.client.post("/sign", data={"ct": creditor.core, "iban": "BE16645348971174", **fields})
    assert _error(r) == (400, "err_invalid_params", "err_invalid_params") and r.json()["extra"] == extra
    assert control.get(f"/creditors/{creditor.api_key}/feeds").json() == before


def test_sign_with_a_png_signature_is_taken(creditor):
    form = {"ct": creditor.core, "iban": "BE16645348971174", "method": "digisign", "digsig": PNG}
    assert creditor.client.post("/sign", data=form).status_code == 200
