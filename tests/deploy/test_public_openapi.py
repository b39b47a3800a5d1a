"""The public OpenAPI document (deploy/gateway/api/, served at /v1/openapi.json): current with the
services, merged without losing anything, and every path in it routed by the gateway to the
service that serves it."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from koppel_cli import openapi
from koppel_cli.openapi import MergeError, merge

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_SERVICE_NAMES = {"mandate", "collection", "sync", "bookkeeping", "notify"}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return openapi.service_documents()


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return dict(json.loads((openapi.OUT_DIR / "openapi.json").read_text()))


def test_the_committed_document_and_page_are_what_koppel_openapi_writes() -> None:
    for name, text in openapi.generated_files().items():
        assert (openapi.OUT_DIR / name).read_text() == text, f"{name} is stale: run `koppel openapi`"


def test_the_document_holds_every_public_route_of_every_service_and_nothing_private(
    documents: dict[str, dict[str, Any]], committed: dict[str, Any]
) -> None:
    public = {p for d in documents.values() for p in d["paths"] if openapi.is_public(p)}
    assert set(committed["paths"]) == public
    for service in documents:
        assert any(openapi.owners(documents)[p] == service for p in committed["paths"]), service
    for path in committed["paths"]:
        assert not path.startswith(("/internal", "/_sandbox")), path
        assert path not in {"/healthz", "/readyz", "/metrics"}
    assert "/v1/mandates" in committed["paths"] and "/v1/events" in committed["paths"]


def test_operation_ids_are_readable_and_unique(committed: dict[str, Any]) -> None:
    ids = [
        op["operationId"]
        for item in committed["paths"].values()
        for method, op in item.items()
        if method in openapi.HTTP_METHODS
    ]
    assert len(ids) == len(set(ids))
    for op_id in ids:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)+", op_id), op_id
    assert committed["paths"]["/v1/mandates"]["post"]["operationId"] == "mandates_create"
    assert committed["paths"]["/v1/invoices"]["get"]["operationId"] == "invoices_list"
    # The same handler name in two services gets the prefix of each.
    assert committed["paths"]["/v1/twikey/connection"]["get"]["operationId"] == "twikey_get_connection"
    assert committed["paths"]["/v1/twinfield/connection"]["get"]["operationId"] == "twinfield_get_connection"


def test_shared_schemas_appear_once_and_every_reference_resolves(committed: dict[str, Any]) -> None:
    schemas = committed["components"]["schemas"]
    text = json.dumps(committed)
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text)):
        assert ref in schemas, ref
    # problem+json is the one error shape, validation errors included; FastAPI's own 422 model
    # is replaced by it and so is not kept.
    assert "Problem" in schemas and "HTTPValidationError" not in schemas
    invalid = committed["paths"]["/v1/mandates"]["post"]["responses"]["422"]
    assert invalid["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    # Internal-only models stay out.
    assert "InviteIn" not in schemas and "PaidItemsOut" not in schemas


def test_every_call_asks_for_the_bearer_token(committed: dict[str, Any]) -> None:
    assert committed["components"]["securitySchemes"]["bearerAuth"] == {**openapi.BEARER}
    assert committed["security"] == [{"bearerAuth": []}]


def _locations(template: str) -> list[tuple[str, str, str]]:
    """(modifier, pattern, body) of each location block of the gateway template."""
    found = []
    for match in re.finditer(r"^    location\s+(=|~|\^~)?\s*(\S+)\s*\{(.*?)^    \}", template, re.M | re.S):
        found.append((match.group(1) or "", match.group(2), match.group(3)))
    return found


def _route(locations: list[tuple[str, str, str]], uri: str) -> str:
    """The body of the location nginx picks for ``uri``: exact match, else the longest prefix
    (unless a regex matches and the prefix is not ^~)."""
    for modifier, pattern, body in locations:
        if modifier == "=" and pattern == uri:
            return body
    prefixes = [(p, m, b) for m, p, b in locations if m in ("", "^~") and not p.startswith("@") and uri.startswith(p)]
    best = max(prefixes, key=lambda x: len(x[0]))
    if best[1] != "^~":
        for modifier, pattern, body in locations:
            if modifier == "~" and re.search(pattern, uri):
                return body
    return best[2]


def _service(body: str) -> str | None:
    match = re.search(r"set \$koppel_service (\w+);", body)
    proxied = re.search(r"proxy_pass http://\$(\w+)_upstream", body)
    if match is None or proxied is None:
        return None
    assert proxied.group(1) == match.group(1), body
    return match.group(1)


def test_every_path_in_the_document_is_routed_by_the_gateway_to_its_service(
    documents: dict[str, dict[str, Any]], committed: dict[str, Any], template_text: str
) -> None:
    locations = _locations(template_text)
    owners = openapi.owners(documents)
    for path in committed["paths"]:
        uri = re.sub(r"\{[^}]+\}", "some-id", path)
        assert _service(_route(locations, uri)) == owners[path], f"{path} is not routed to {owners[path]}-svc"


def test_the_gateway_serves_the_document_and_its_page_from_the_folder_koppel_openapi_writes(
    template_text: str,
) -> None:
    locations = _locations(template_text)
    assert "alias ${GATEWAY_API_DOCS}/openapi.json;" in _route(locations, openapi.DOCUMENT_URL)
    assert "alias ${GATEWAY_API_DOCS}/index.html;" in _route(locations, openapi.DOCS_URL)
    assert _service(_route(locations, f"{openapi.ASSETS_URL}/swagger-ui-bundle.js")) in GATEWAY_SERVICE_NAMES
    page = (openapi.OUT_DIR / "index.html").read_text()
    assert "cdn" not in page.lower()
    assert f"{openapi.ASSETS_URL}/swagger-ui-bundle.js" in page and openapi.DOCUMENT_URL in page
    # The same page's assets are the ones the services serve (fastapi-offline).
    import fastapi_offline

    static = Path(fastapi_offline.__file__).parent / "static"
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert (static / name).exists()


# ---- the merge's refusals, on small documents --------------------------------------------------


def _doc(paths: dict[str, Any], schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {}, "paths": paths, "components": {"schemas": schemas or {}}}


def _op(op_id: str, ref: str | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "ok"}}
    if ref:
        responses["200"]["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}
    return {"operationId": op_id, "responses": responses}


def test_the_merge_refuses_one_operation_id_in_two_services() -> None:
    docs = {
        "sync": _doc({"/v1/twikey/connection": {"get": _op("get_connection")}}),
        "bookkeeping": _doc({"/v1/twinfield/connection": {"get": _op("get_connection")}}),
    }
    with pytest.raises(MergeError, match="operationId 'get_connection'"):
        merge(docs)


def test_the_merge_refuses_two_different_schemas_under_one_name_and_keeps_equal_ones_once() -> None:
    customer_a = {"type": "object", "properties": {"number": {"type": "string"}}}
    customer_b = {"type": "object", "properties": {"number": {"type": "integer"}}}
    problem = {"type": "object", "properties": {"code": {"type": "string"}}}
    docs = {
        "mandate": _doc({"/v1/mandates": {"get": _op("mandates_list", "Customer")}}, {"Customer": customer_a}),
        "collection": _doc({"/v1/invoices": {"get": _op("invoices_list", "Customer")}}, {"Customer": customer_b}),
    }
    with pytest.raises(MergeError, match=r"components\.schemas\.Customer differs between mandate and collection"):
        merge(docs)
    docs["collection"]["components"]["schemas"]["Customer"] = copy.deepcopy(customer_a)
    for doc in docs.values():
        doc["components"]["schemas"]["Problem"] = problem
    merged = merge(docs)
    assert merged["components"]["schemas"] == {"Customer": customer_a}  # Problem unused: dropped


def test_the_merge_refuses_a_path_served_by_two_services() -> None:
    docs = {
        "mandate": _doc({"/v1/mandates": {"get": _op("mandates_list")}}),
        "sync": _doc({"/v1/mandates": {"post": _op("mandates_create")}}),
    }
    with pytest.raises(MergeError, match="served by both mandate and sync"):
        merge(docs)


def test_the_merge_refuses_a_reference_nobody_defines() -> None:
    with pytest.raises(MergeError, match="Missing"):
        merge({"notify": _doc({"/v1/events": {"get": _op("events_feed", "Missing")}})})


def test_the_merge_leaves_private_routes_out() -> None:
    docs = {
        "sync": _doc(
            {
                "/v1/tenants": {"post": _op("tenants_register")},
                "/internal/v1/mandates/invite": {"post": _op("invite", "InviteIn")},
                "/_sandbox/reset": {"post": _op("reset")},
            },
            {"InviteIn": {"type": "object"}},
        )
    }
    merged = merge(docs)
    assert list(merged["paths"]) == ["/v1/tenants"]
    assert merged["components"]["schemas"] == {}
