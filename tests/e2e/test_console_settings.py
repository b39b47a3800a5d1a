"""The console's settings forms in front of the real service APIs (no browser): each form refuses
bad input beside its field and changes nothing, an accepted one redirects (POST-redirect-GET), a
secret is shown once, the Twikey Test shows Twikey's own code and message, and the overview's
first-run checklist follows what is set."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from koppel_console.app import csrf_for
from koppel_shared.auth import issue_admin_token, issue_token
from koppel_shared.testing.fixtures import TEST_SIGNING_KEY
from koppel_shared.testing.serving import Served
from twikey_sandbox import create_app as twikey_sandbox
from twinfield_sandbox import SandboxConfig
from twinfield_sandbox import create_app as twinfield_sandbox
from twinfield_sandbox.testing import OFFICE, ORG

from .browser import serve
from .console_stack import Stack, running

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def twinfield() -> Iterator[str]:
    """Twinfield (the sandbox) behind bookkeeping-svc; its base URL."""
    with Served(twinfield_sandbox(SandboxConfig()), lifespan="off") as served:
        yield served.base


@pytest.fixture(scope="module")
async def signed_in(twinfield: str) -> AsyncIterator[tuple[httpx.AsyncClient, Stack]]:
    overrides = {
        # ERP endpoints on this machine (nothing delivers to them: no notify worker runs here)
        "notify": {"webhook_allow_http": True, "webhook_allowed_networks": ["127.0.0.0/8"]},
        "bookkeeping": {"twinfield_login_url": twinfield, "twinfield_timeout_seconds": 5.0},
    }
    async with (
        running(invoices=20, overrides=overrides) as stack,
        httpx.AsyncClient(base_url=stack.console, timeout=60) as client,
    ):
        assert (await client.post("/console/login", data={"token": stack.token})).status_code == 303
        yield client, stack


def csrf(stack: Stack) -> str:
    return csrf_for(stack.settings, stack.token)


def field_error(html: str, name: str) -> str | None:
    found = re.search(rf'id="error-{name}" role="alert">([^<]*)<', html)
    return found[1] if found else None


async def api(stack: Stack, service: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.get(f"{stack.services[service]}{path}", headers={"Authorization": f"Bearer {stack.token}"})


async def test_every_settings_page_renders_and_the_nav_leads_there(signed_in: tuple[httpx.AsyncClient, Stack]):
    client, _ = signed_in
    assert (await client.get("/console/settings")).headers["location"] == "/console/settings/twikey"
    for section in ("twikey", "twinfield", "policy", "endpoints", "tokens"):
        page = await client.get(f"/console/settings/{section}")
        assert page.status_code == 200, page.text[:400]
        assert f'id="settings-{section}"' in page.text and 'href="/console/settings"' in page.text


async def test_a_form_without_its_csrf_token_is_refused(signed_in: tuple[httpx.AsyncClient, Stack]):
    client, _ = signed_in
    refused = await client.post("/console/settings/policy", data={"csrf": "stale", "lead_days": "1"})
    assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"


async def test_policy_bad_input_is_shown_beside_its_field_and_changes_nothing(
    signed_in: tuple[httpx.AsyncClient, Stack],
):
    client, stack = signed_in
    before = (await api(stack, "collection", "/v1/collection-policy")).json()
    good = {"csrf": csrf(stack), "auto_collect": "on", "lead_days": "3", "max_amount_eur": "5000",
            "retry_r_codes": "AM04", "retry_after_days": "5", "max_attempts": "2"}  # fmt: skip
    # the console's own check: a number out of the service's range
    page = await client.post("/console/settings/policy", data={**good, "lead_days": "61"})
    assert page.status_code == 422 and "0 to 60" in (field_error(page.text, "lead_days") or "")
    assert 'value="61"' in page.text  # what was typed stays in the form
    # the service's own refusal: an R-code that may never be retried comes back beside its field
    page = await client.post("/console/settings/policy", data={**good, "retry_r_codes": "MD01"})
    assert page.status_code == 422 and "never be retried" in (field_error(page.text, "retry_r_codes") or "")
    page = await client.post("/console/settings/policy", data={**good, "max_amount_eur": "12.345"})
    assert page.status_code == 422 and field_error(page.text, "max_amount_eur")
    assert (await api(stack, "collection", "/v1/collection-policy")).json() == before

    saved = await client.post("/console/settings/policy", data=good)
    assert saved.status_code == 303 and saved.headers["location"].startswith("/console/settings/policy?flash=")
    policy = (await api(stack, "collection", "/v1/collection-policy")).json()
    assert policy["version"] > before["version"] and policy["max_amount_cents"] == 500_000
    assert policy["notify_debtor"] is False and policy["auto_collect"] is True  # unticked is off


async def test_policy_preview_shows_what_it_would_do_and_saves_nothing(signed_in: tuple[httpx.AsyncClient, Stack]):
    client, stack = signed_in
    before = (await api(stack, "collection", "/v1/collection-policy")).json()
    form = {"csrf": csrf(stack), "lead_days": "10", "max_amount_eur": "", "retry_r_codes": "AM04",
            "retry_after_days": "5", "max_attempts": "2", "auto_collect": "on"}  # fmt: skip
    page = await client.post("/console/settings/policy/preview", data={**form, "max_attempts": "9"})
    assert page.status_code == 422 and field_error(page.text, "max_attempts") and 'id="preview"' not in page.text
    page = await client.post("/console/settings/policy/preview", data=form)
    assert page.status_code == 200 and '<table id="preview">' in page.text, page.text[-3000:]
    assert re.search(r'id="preview-would_collect">\d+<', page.text)
    assert 'value="10"' in page.text  # the previewed values stay in the form, ready to Save
    assert (await api(stack, "collection", "/v1/collection-policy")).json() == before


async def test_an_endpoint_is_added_and_its_secret_shown_exactly_once(signed_in: tuple[httpx.AsyncClient, Stack]):
    client, stack = signed_in
    before = (await api(stack, "notify", "/v1/webhook-endpoints")).json()["data"]
    form = {"csrf": csrf(stack), "url": "ftp://x", "event_types": "*"}
    page = await client.post("/console/settings/endpoints", data=form)
    assert page.status_code == 422 and field_error(page.text, "url")
    form = {"csrf": csrf(stack), "url": "http://127.0.0.1:9/hook", "event_types": "mandate"}
    page = await client.post("/console/settings/endpoints", data=form)
    assert page.status_code == 422 and field_error(page.text, "event_types")
    assert len((await api(stack, "notify", "/v1/webhook-endpoints")).json()["data"]) == len(before)

    added = await client.post(
        "/console/settings/endpoints",
        data={"csrf": csrf(stack), "url": "http://127.0.0.1:9/hook", "event_types": "mandate.*, collection.paid"},
    )
    assert added.status_code == 303, re.findall(r'role="alert">([^<]*)<', added.text)
    shown = await client.get(added.headers["location"])
    secret = re.search(r'<code id="secret-value">(whsec_[^<]+)</code>', shown.text)
    assert secret, shown.text[:2000]
    again = await client.get("/console/settings/endpoints")
    assert secret[1] not in again.text and 'id="secret-value"' not in again.text
    after = (await api(stack, "notify", "/v1/webhook-endpoints")).json()["data"]
    new = [e for e in after if e["url"] == "http://127.0.0.1:9/hook"]
    assert len(new) == 1 and new[0]["event_types"] == ["mandate.*", "collection.paid"]

    sent = await client.post(f"/console/settings/endpoints/{new[0]['id']}/test", data={"csrf": csrf(stack)})
    assert sent.status_code == 303 and "Test%20event%20sent" in sent.headers["location"].replace("+", "%20")
    page = await client.get("/console/settings/endpoints")
    row = page.text.split(f'<tr data-id="{new[0]["id"]}">', 1)[1].split("</tr>", 1)[0]
    assert "koppel.test" in row  # the endpoint's recent deliveries
    missing = await client.post(f"/console/settings/endpoints/{uuid.uuid4()}/test", data={"csrf": csrf(stack)})
    assert "not%20available" not in missing.headers["location"] and "404" in missing.headers["location"]

    rotated = await client.post(f"/console/settings/endpoints/{new[0]['id']}/rotate", data={"csrf": csrf(stack)})
    shown = await client.get(rotated.headers["location"])
    fresh = re.search(r'<code id="secret-value">(whsec_[^<]+)</code>', shown.text)
    assert fresh and fresh[1] != secret[1]


async def test_a_secret_kept_for_one_session_is_not_shown_to_another(signed_in: tuple[httpx.AsyncClient, Stack]):
    client, stack = signed_in
    added = await client.post(
        "/console/settings/endpoints", data={"csrf": csrf(stack), "url": "http://127.0.0.1:9/other", "event_types": "*"}
    )
    once = added.cookies.get("koppel_console_once")
    assert once
    other = issue_token(TEST_SIGNING_KEY, stack.tenant, ["operator"])
    async with httpx.AsyncClient(base_url=stack.console, timeout=30) as stranger:
        await stranger.post("/console/login", data={"token": other})
        stranger.cookies.set("koppel_console_once", once, path="/console/settings")
        page = await stranger.get("/console/settings/endpoints")
    assert 'id="secret-value"' not in page.text


async def test_twikey_key_is_write_only_and_the_test_shows_twikeys_own_refusal(
    signed_in: tuple[httpx.AsyncClient, Stack],
):
    client, stack = signed_in
    page = await client.post("/console/settings/twikey", data={"csrf": csrf(stack), "api_key": ""})
    assert page.status_code == 422 and "first time" in (field_error(page.text, "api_key") or "")
    assert (await api(stack, "sync", "/v1/twikey/connection")).status_code == 404
    page = await client.post("/console/settings/twikey", data={"csrf": csrf(stack), "api_key": "short"})
    assert page.status_code == 422 and field_error(page.text, "api_key")

    with serve(twikey_sandbox(api_key="SANDBOX-GOOD-KEY-1")) as sandbox:
        wrong = await client.post(
            "/console/settings/twikey",
            data={"csrf": csrf(stack), "api_key": "NOT-A-KEY-OF-TWIKEY", "base_url": f"{sandbox}/creditor"},
        )
        assert wrong.status_code == 303
        page = await client.get("/console/settings/twikey")
        assert "NOT-A-KEY-OF-TWIKEY" not in page.text and "API key set on" in page.text
        tested = await client.post("/console/settings/twikey/test", data={"csrf": csrf(stack)})
        page = await client.get(tested.headers["location"])
        code = re.search(r'<code id="twikey-code">([^<]*)</code> <span id="twikey-message">([^<]*)</span>', page.text)
        assert code and code[1] and code[2], page.text[:3000]  # Twikey's own code and message

        # the template ids as Twikey's dashboard shows them; B2B mistyped
        async with httpx.AsyncClient(timeout=30) as http:
            creditor = (await http.get(f"{sandbox}/_sandbox/creditors/SANDBOX-GOOD-KEY-1")).json()
        core = str(creditor["templates"]["CORE"])
        right = await client.post(
            "/console/settings/twikey",
            data={"csrf": csrf(stack), "api_key": "SANDBOX-GOOD-KEY-1", "core_template_id": core,
                  "b2b_template_id": "999999"},
        )  # fmt: skip
        assert right.status_code == 303
        tested = await client.post("/console/settings/twikey/test", data={"csrf": csrf(stack)})
        page = await client.get(tested.headers["location"])
        assert 'id="twikey-test-result">Twikey accepted the key' in page.text
        assert 'id="template-ok-CORE"' in page.text and 'id="template-ok-B2B"' not in page.text
        problem = re.search(r'id="template-problem-B2B" role="alert"><code>([^<]+)</code>', page.text)
        assert problem and problem[1] == "err_no_such_ct"
        assert 'id="webhook-url"' in page.text
    connection = (await api(stack, "sync", "/v1/twikey/connection")).json()
    assert connection["last_test"]["ok"] is True and connection["base_url"] == f"{sandbox}/creditor"


async def test_the_checklist_follows_what_is_set_and_links_to_each_form(signed_in: tuple[httpx.AsyncClient, Stack]):
    client, _ = signed_in
    page = await client.get("/console/overview")
    assert 'id="checklist"' in page.text
    for key, href in [
        ("twinfield_connected", "/console/settings/twinfield"),
        ("twinfield_office", "/console/settings/twinfield"),
        ("erp_token", "/console/settings/tokens"),
    ]:
        item = re.search(rf'<li id="todo-{key}" class="(\w+)">.*?href="([^"]+)"', page.text)
        assert item and item[1] == "todo" and item[2] == href, key
    # the seeded tenant has ERP endpoints (and the tests above saved a policy)
    assert re.search(r'<li id="todo-erp_endpoint" class="done">', page.text)


async def test_a_new_tenant_is_set_up_from_the_sign_in_page_with_an_admin_token(
    signed_in: tuple[httpx.AsyncClient, Stack],
):
    _, stack = signed_in
    async with httpx.AsyncClient(base_url=stack.console, timeout=60) as browser:
        # a tenant's operator token is no admin token: refused beside its field, no tenant made
        page = await browser.post("/console/login/new-tenant", data={"name": "Acme BV", "admin_token": stack.token})
        assert page.status_code == 422 and field_error(page.text, "admin_token")
        page = await browser.post("/console/login/new-tenant", data={"name": " ", "admin_token": "x"})
        assert page.status_code == 422 and field_error(page.text, "name")
        assert "koppel_console_token" not in browser.cookies

        admin = issue_admin_token(TEST_SIGNING_KEY)
        page = await browser.post("/console/login/new-tenant", data={"name": "Acme BV", "admin_token": admin})
        assert page.status_code == 303 and page.headers["location"] == "/console/overview"
        operator = browser.cookies["koppel_console_token"]
        overview = await browser.get("/console/overview")
        tenant = re.search(r'class="who">tenant <code>([0-9a-f-]{36})</code>', overview.text)
        assert tenant and tenant[1] != str(stack.tenant)
        # a brand-new tenant: everything still to do, and every service already knows it
        assert len(re.findall(r'<li id="todo-\w+" class="todo">', overview.text)) == 8
        assert 'role="alert"' not in overview.text.split('id="checklist"', 1)[1].split("</section>", 1)[0]
        # the same name again is refused beside the name
        page = await browser.post("/console/login/new-tenant", data={"name": "acme bv", "admin_token": admin})
        assert page.status_code == 422 and "exists already" in (field_error(page.text, "name") or "")
    async with httpx.AsyncClient(timeout=30) as http:
        me = await http.get(f"{stack.services['sync']}/v1/tenants/me", headers={"Authorization": f"Bearer {operator}"})
    assert me.json()["name"] == "Acme BV"


async def test_tokens_are_issued_shown_once_and_revoked(signed_in: tuple[httpx.AsyncClient, Stack]):
    client, stack = signed_in
    page = await client.post("/console/settings/tokens", data={"csrf": csrf(stack), "label": "", "scopes": "erp"})
    assert page.status_code == 422 and field_error(page.text, "label")
    page = await client.post("/console/settings/tokens", data={"csrf": csrf(stack), "label": "ERP", "ttl_days": "731"})
    assert page.status_code == 422 and field_error(page.text, "scopes") and field_error(page.text, "ttl_days")
    assert (await api(stack, "sync", "/v1/tokens")).json()["items"] == []

    issued = await client.post(
        "/console/settings/tokens", data={"csrf": csrf(stack), "label": "ERP production", "scopes": "erp"}
    )
    assert issued.status_code == 303
    shown = await client.get(issued.headers["location"])
    token = re.search(r'<code id="secret-value">([^<]+)</code>', shown.text)
    assert token and token[1].count(".") == 2
    assert token[1] not in (await client.get("/console/settings/tokens")).text
    async with httpx.AsyncClient(timeout=30) as http:
        erp = {"Authorization": f"Bearer {token[1]}"}
        assert (await http.get(f"{stack.services['collection']}/v1/invoices?limit=1", headers=erp)).status_code == 200
        listed = (await api(stack, "sync", "/v1/tokens")).json()["items"]
        assert [(t["label"], t["scopes"]) for t in listed] == [("ERP production", ["erp"])]
        overview = await client.get("/console/overview")
        assert '<li id="todo-erp_token" class="done">' in overview.text

        revoked = await client.post(f"/console/settings/tokens/{listed[0]['id']}/revoke", data={"csrf": csrf(stack)})
        assert revoked.status_code == 303 and "revoked" in revoked.headers["location"]
        assert (await api(stack, "sync", "/v1/tokens")).json()["items"][0]["revoked_at"]
        refused = await http.get(f"{stack.services['sync']}/v1/twikey/feeds", headers=erp)
        assert refused.status_code in (401, 403)


async def test_a_revoked_operator_token_signs_the_browser_out_with_the_reason(
    signed_in: tuple[httpx.AsyncClient, Stack],
):
    client, stack = signed_in
    issued = await client.post(
        "/console/settings/tokens", data={"csrf": csrf(stack), "label": "night shift", "scopes": "operator"}
    )
    shown = await client.get(issued.headers["location"])
    token = re.search(r'<code id="secret-value">([^<]+)</code>', shown.text)
    assert token
    async with httpx.AsyncClient(base_url=stack.console, timeout=60) as browser:
        assert (await browser.post("/console/login", data={"token": token[1]})).status_code == 303
        assert (await browser.get("/console/overview")).status_code == 200

        [item] = [t for t in (await api(stack, "sync", "/v1/tokens")).json()["items"] if t["label"] == "night shift"]
        revoked = await client.post(f"/console/settings/tokens/{item['id']}/revoke", data={"csrf": csrf(stack)})
        assert revoked.status_code == 303

        # The next page signs the browser out (no page of 401s) and says why.
        page = await browser.get("/console/overview")
        assert page.status_code == 303 and page.headers["location"] == "/console/login?ended=token_revoked"
        assert "koppel_console_token" not in browser.cookies
        login = await browser.get(page.headers["location"])
        assert "its token was revoked" in login.text
        # Only known reasons are shown: a made-up one shows nothing.
        assert 'role="alert"' not in (await browser.get("/console/login?ended=%3Cscript%3E")).text
    # The operator who revoked it is still signed in.
    assert (await client.get("/console/overview")).status_code == 200


async def test_twinfield_office_and_accounts_are_chosen_from_twinfields_own(
    signed_in: tuple[httpx.AsyncClient, Stack], twinfield: str
):
    client, stack = signed_in
    page = await client.get("/console/settings/twinfield")
    assert "Connect Twinfield first" in page.text and 'id="twinfield-connect"' in page.text
    # consent given (the headless way: a refresh token from the sandbox)
    async with httpx.AsyncClient(timeout=30) as http:
        tokens = await http.post(
            f"{twinfield}/_sandbox/tokens", json={"client_id": "koppel-sandbox", "organisation": ORG}
        )
        connected = await http.post(
            f"{stack.services['bookkeeping']}/v1/twinfield/connection/refresh-token",
            json={"refresh_token": tokens.json()["refresh_token"]},
            headers={"Authorization": f"Bearer {stack.token}"},
        )
    assert connected.status_code == 200, connected.text
    page = await client.get("/console/settings/twinfield")
    assert f'<option value="{OFFICE}"' in page.text  # the offices Twinfield has
    assert '<option value="1105" ' in page.text and "Tussenrekening Twikey" in page.text  # the office's ledger

    form = {"csrf": csrf(stack), "office": OFFICE, "debtor_account": "1300", "direct_debit_account": "1105",
            "paylink_account": "1110"}  # fmt: skip
    page = await client.post("/console/settings/twinfield", data={**form, "direct_debit_account": "9999"})
    assert page.status_code == 422 and "no account 9999" in (field_error(page.text, "direct_debit_account") or "")
    page = await client.post("/console/settings/twinfield", data={**form, "office": "NLA999999"})
    assert page.status_code == 422 and field_error(page.text, "office")
    assert (await api(stack, "bookkeeping", "/v1/twinfield/connection")).json()["office"] is None

    saved = await client.post("/console/settings/twinfield", data={**form, "paylink_account": "1100"})
    assert saved.status_code == 303
    connection = (await api(stack, "bookkeeping", "/v1/twinfield/connection")).json()
    assert connection["office"] == OFFICE
    assert connection["cross_accounts"] == {"direct_debit": "1105", "paylink": "1100"}
    overview = await client.get("/console/overview")
    for key in ("twinfield_connected", "twinfield_office"):
        assert f'<li id="todo-{key}" class="done">' in overview.text
