"""The connection test reports which configured templates Twikey has for the key (sandbox over HTTP)."""

from __future__ import annotations

from koppel_shared.testing.serving import Served

from .conftest import Tenant


async def test_connection_test_lists_the_configured_templates_twikey_has(tenant: Tenant) -> None:
    tested = (await tenant.operator.post("/v1/twikey/connection/test")).json()
    assert tested["ok"] is True
    assert [(t["id"], t["scheme"], t["setting"]) for t in tested["templates"]] == [
        (tenant.core, "CORE", "core_template_id"),
        (tenant.b2b, "B2B", "b2b_template_id"),
    ]
    assert all(isinstance(t["name"], str) and t["name"] for t in tested["templates"])
    assert tested["template_problems"] == []


async def test_a_template_of_another_twikey_account_is_reported_with_twikeys_code(
    tenant: Tenant, sandbox: Served
) -> None:
    foreign = (await tenant.control.post("/creditors", json={})).json()["templates"]["B2B"]
    shown = (await tenant.operator.get("/v1/twikey/connection")).json()
    r = await tenant.operator.put(
        "/v1/twikey/connection",
        json={"base_url": shown["base_url"], "core_template_id": str(tenant.core), "b2b_template_id": str(foreign)},
    )
    assert r.status_code == 200, r.text
    tested = (await tenant.operator.post("/v1/twikey/connection/test")).json()
    assert tested["ok"] is True
    assert [t["id"] for t in tested["templates"]] == [tenant.core]
    [problem] = tested["template_problems"]
    assert (problem["setting"], problem["id"], problem["code"]) == ("b2b_template_id", foreign, "err_no_such_ct")


async def test_a_missing_template_setting_is_a_problem_not_a_call(tenant: Tenant) -> None:
    shown = (await tenant.operator.get("/v1/twikey/connection")).json()
    r = await tenant.operator.put(
        "/v1/twikey/connection", json={"base_url": shown["base_url"], "core_template_id": str(tenant.core)}
    )
    assert r.status_code == 200, r.text
    tested = (await tenant.operator.post("/v1/twikey/connection/test")).json()
    assert [t["scheme"] for t in tested["templates"]] == ["CORE"]
    assert [(p["setting"], p["code"]) for p in tested["template_problems"]] == [
        ("b2b_template_id", "template_not_configured")
    ]


async def test_a_failed_login_lists_no_templates(tenant: Tenant) -> None:
    shown = (await tenant.operator.get("/v1/twikey/connection")).json()
    await tenant.operator.put("/v1/twikey/connection", json={"api_key": "WRONG-KEY-123", "base_url": shown["base_url"]})
    failed = (await tenant.operator.post("/v1/twikey/connection/test")).json()
    assert (failed["ok"], failed["code"], failed["templates"]) == (False, "err_no_login", [])
