"""The debtor's wire shape stays as it is while the code behind it is reshaped: the JSON schema
of every event that carries debtor data, the schemas in mandate-svc's and sync-svc's OpenAPI
documents that do, sync-svc's internal invite, and the invite body mandate-svc sends are compared
with ``wire_schemas.json``. (Only what carries a debtor: other changes to the APIs are not this
test's business.) The events every service's system consumer reads (``tenant.registered``,
``token.revoked``, ...) are held fixed too: every service, of every version running, decodes them.

After a deliberate change of the wire, regenerate it: ``KOPPEL_WRITE_WIRE_SCHEMAS=1 uv run pytest
tests/wire``, and say so in the change."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from koppel_shared.events import registry
from koppel_shared.messaging.ping import ping_consumer
from koppel_shared.service import build_api
from koppel_shared.testing.fixtures import settings_for_test
from mandate_svc.adapters.sync_client import HttpSyncClient
from mandate_svc.bootstrap import definition as mandate_definition
from mandate_svc.domain.model import Mandate, Status
from mandate_svc.domain.preconditions import Customer, MandateRequest
from mandate_svc.service_layer import mandates
from mandate_svc.settings import Settings as MandateSettings
from sync_svc.bootstrap import definition as sync_definition
from sync_svc.settings import Settings as SyncSettings

SNAPSHOT = Path(__file__).with_name("wire_schemas.json")
DEBTOR_MARKS = ('"zip"', '"company_name"', '"mobile"')


def _carries_debtor(schema: Any) -> bool:
    text = json.dumps(schema)
    return any(mark in text for mark in DEBTOR_MARKS)


def _event_schemas() -> dict[str, Any]:
    schemas = {f"{name} v{version}": model.model_json_schema() for name, (version, model) in registry._by_type.items()}
    everywhere = set(ping_consumer().bindings)
    return {
        name: schema
        for name, schema in sorted(schemas.items())
        if _carries_debtor(schema) or name.split(" ")[0] in everywhere
    }


def _openapi(definition: Any, settings_cls: Any) -> dict[str, Any]:
    settings = settings_for_test(settings_cls, "postgresql+asyncpg://unused/unused", "wire.")
    document = build_api(definition, settings).openapi()
    components = document["components"]["schemas"]
    return {
        "schemas": {name: schema for name, schema in sorted(components.items()) if _carries_debtor(schema)},
        "internal": {path: item for path, item in document["paths"].items() if path.startswith("/internal/")},
    }


async def _invite_body() -> dict[str, Any]:
    """The JSON mandate-svc posts to sync-svc's internal invite, every customer field set."""
    sent: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"mandate_number": "KOP1", "sign_url": "https://twikey.example/s"})

    customer = Customer(
        number="C-1", name="An Peeters", company_name="Peeters BV", email="an@example.be", mobile="+32470000000",
        iban="BE68539007547034", bic="GKCCBEBB", language="nl", address="Kerkstraat 1", zip="9000", city="Gent",
        country="BE",
    )  # fmt: skip
    now = datetime(2026, 12, 6, tzinfo=UTC)
    mandate = Mandate(
        "0f5b8f3e-2a47-4c1e-9a55-0c3f1d0b7e21", "t-1", "C-1", "CORE", Status.REQUESTED, now, now, delivery="email"
    )
    request = mandates._invite_request(mandate, MandateRequest(customer, "CORE", "email"))
    client = HttpSyncClient("http://sync", "a-service-token-for-the-wire-test")
    client._client = httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://sync")
    await client.invite("8d0b5a8e-1111-4c1e-9a55-0c3f1d0b7e21", request)
    await client.close()
    return dict(sent[0])


async def test_events_apis_and_the_internal_invite_keep_their_wire_shape() -> None:
    current = {
        "events": _event_schemas(),
        "mandate_openapi": _openapi(mandate_definition, MandateSettings),
        "sync_openapi": _openapi(sync_definition, SyncSettings),
        "invite_body": await _invite_body(),
    }
    if os.environ.get("KOPPEL_WRITE_WIRE_SCHEMAS"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    for part in current:
        assert current[part] == expected[part], part
