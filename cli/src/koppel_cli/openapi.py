"""One public OpenAPI document for ERP developers, merged from the five services' own documents.

Each service's FastAPI app is built in-process (building it opens neither the database nor the
broker) and its document read; the merge keeps the routes the gateway forwards to it (not
``/internal``, the sandboxes' ``/_sandbox``, health or metrics), adds the bearer token every call
needs, and keeps each component once. It refuses, instead of quietly picking one:

- two services answering the same path,
- two operations with the same ``operationId`` (generated clients name functions after it),
- two services defining different schemas (or other components) under the same name.

``koppel openapi`` writes the result to ``deploy/gateway/api/openapi.json`` beside the docs page
``index.html``; the gateway serves them at ``/v1/openapi.json`` and ``/v1/docs``. A test fails
when the committed files differ from a fresh merge.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from koppel_cli.localrun import REPO, SERVICES

OUT_DIR = REPO / "deploy" / "gateway" / "api"
DOCUMENT_URL = "/v1/openapi.json"
DOCS_URL = "/v1/docs"
# Swagger UI's script and style: the copies every service already serves (fastapi-offline), which
# the gateway passes on under this prefix, so that the page needs no CDN.
ASSETS_URL = "/v1/docs/static"

# Served by a service but not by the gateway: service-to-service calls, the sandboxes' control
# API, the process probes and the per-service documentation.
PRIVATE_PREFIXES = ("/internal/", "/_sandbox/")
PRIVATE_PATHS = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc"}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

TITLE = "Koppel API"
VERSION = "1.0.0"
DESCRIPTION = """\
Koppel connects your ERP to Twikey (mandates, direct debits, pay links) and Twinfield (bookings).
This is the whole public API, behind one address (the gateway); every path below is served there.

**Authentication**: every call carries your tenant token, `Authorization: Bearer <token>`.
A token with scope `operator` may also change connections and the collection policy.

**Errors** are `application/problem+json` with a stable, machine-readable `code` and a `detail`;
invalid input is a 422 whose `errors` name each offending `field`, the `rule` it broke and a
`message`. A request that is refused changes nothing.

**Events**: Koppel tells your ERP every status change through signed webhooks
(Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`) and a replayable feed
(`GET /v1/events`). The ERP quickstart (`docs/erp-quickstart.md`) walks from a token to a paid,
booked invoice.
"""

BEARER = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "A tenant token (`koppel token issue`); Koppel's console shows the one of the demo tenant.",
}


class MergeError(Exception):
    """The services' documents cannot be merged without losing or confusing something."""


def service_documents(services: tuple[str, ...] = tuple(SERVICES)) -> dict[str, dict[str, Any]]:
    """Each service's own OpenAPI document, from its app built in-process with default settings."""
    from koppel_shared.service import build_api

    documents = {}
    for name in services:
        definition = importlib.import_module(f"{name}_svc.bootstrap").definition
        documents[name] = build_api(definition, definition.settings_cls()).openapi()
    return documents


def is_public(path: str) -> bool:
    return path not in PRIVATE_PATHS and not path.startswith(PRIVATE_PREFIXES)


def owners(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Public path -> the service that serves it; a path served by two services is an error."""
    found: dict[str, str] = {}
    for service, document in documents.items():
        for path in document.get("paths", {}):
            if not is_public(path):
                continue
            if path in found:
                raise MergeError(f"path {path} is served by both {found[path]} and {service}")
            found[path] = service
    return found


def merge(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The public document: the services' public paths, each component once, bearer auth."""
    versions = {document.get("openapi") for document in documents.values()}
    if len(versions) != 1:
        raise MergeError(f"the services' documents use different OpenAPI versions: {sorted(map(str, versions))}")
    path_owner = owners(documents)
    paths: dict[str, Any] = {}
    operation_ids: dict[str, str] = {}
    for path, service in path_owner.items():
        item = json.loads(json.dumps(documents[service]["paths"][path]))  # a copy: the apps cache theirs
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            op_id = operation.get("operationId")
            where = f"{service} {method.upper()} {path}"
            if not op_id:
                raise MergeError(f"{where} has no operationId")
            if op_id in operation_ids:
                raise MergeError(f"operationId {op_id!r} is used by both {operation_ids[op_id]} and {where}")
            operation_ids[op_id] = where
        paths[path] = item

    components: dict[str, dict[str, Any]] = {}
    origin: dict[tuple[str, str], str] = {}
    for service, document in documents.items():
        for section, entries in document.get("components", {}).items():
            kept = components.setdefault(section, {})
            for name, value in entries.items():
                if name in kept and kept[name] != value:
                    raise MergeError(
                        f"components.{section}.{name} differs between {origin[(section, name)]} and {service}: "
                        "rename one of the models"
                    )
                kept.setdefault(name, value)
                origin.setdefault((section, name), service)

    security = components.setdefault("securitySchemes", {})
    if security.get("bearerAuth", BEARER) != BEARER:
        raise MergeError("a service defines another security scheme named bearerAuth")
    security["bearerAuth"] = BEARER
    _keep_used_schemas(paths, components)

    document = {
        "openapi": versions.pop(),
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "security": [{"bearerAuth": []}],
        "tags": [{"name": tag} for tag in _tags(documents, paths)],
        "paths": dict(sorted(paths.items())),
        "components": {section: dict(sorted(entries.items())) for section, entries in sorted(components.items())},
    }
    return document


def _refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "$ref" and isinstance(inner, str):
                yield inner
            else:
                yield from _refs(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _refs(inner)


def _keep_used_schemas(paths: Mapping[str, Any], components: dict[str, dict[str, Any]]) -> None:
    """Drop schemas only the left-out routes (or nothing) refer to, e.g. the internal API's models
    and FastAPI's HTTPValidationError, which the problem+json 422 replaces."""
    schemas = components.get("schemas", {})
    used: set[str] = set()
    todo = list(_refs(paths))
    while todo:
        ref = todo.pop()
        prefix = "#/components/schemas/"
        if not ref.startswith(prefix):
            continue
        name = ref.removeprefix(prefix)
        if name in used:
            continue
        if name not in schemas:
            raise MergeError(f"{ref} is referred to but no service defines it")
        used.add(name)
        todo.extend(_refs(schemas[name]))
    components["schemas"] = {name: schema for name, schema in schemas.items() if name in used}


def _tags(documents: Mapping[str, Mapping[str, Any]], paths: Mapping[str, Any]) -> list[str]:
    """The tags in the order the services declare their routes (mandates before invoices before
    bookings), which is the order of the story; the docs page groups operations by them."""
    ordered: dict[str, None] = {}
    for document in documents.values():
        for path, item in document.get("paths", {}).items():
            if path not in paths:
                continue
            for method, operation in item.items():
                if method in HTTP_METHODS:
                    ordered.update(dict.fromkeys(operation.get("tags", [])))
    return list(ordered)


def render_document(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def docs_page() -> str:
    """Swagger UI on the merged document, its assets from the gateway (no CDN)."""
    from fastapi.openapi.docs import get_swagger_ui_html

    page = get_swagger_ui_html(
        openapi_url=DOCUMENT_URL,
        title=f"{TITLE} — documentation",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
    )
    return bytes(page.body).decode() + "\n"


def generated_files() -> dict[str, str]:
    """File name (in ``OUT_DIR``) -> content, as ``koppel openapi`` writes them."""
    return {"openapi.json": render_document(merge(service_documents())), "index.html": docs_page()}
