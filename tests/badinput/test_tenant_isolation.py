"""Tenant isolation, walked from every service's OpenAPI: tenant A owns real resources (made
through the APIs, or by the consumer that makes them where no API does); tenant B, with every
scope A has, calls every route that names a resource with A's ids, every method, and every list
route. B is refused with a 403/404 problem, sees none of A's data anywhere, and changes nothing
of A's. Likewise every route that asks for a token refuses one no issuer signed, and a service
token outside ``/internal``.

Routes are not listed by hand: a new route with a path parameter this test cannot fill fails it,
unless it is added to ``SKIPPED`` with a reason (the test asserts that list is short and exact).
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bookkeeping_svc.service_layer import intake
from koppel_shared.auth import TENANT_HEADER, SigningKey, issue_service_token, issue_token
from koppel_shared.events import new_event
from koppel_shared.events.collection import CollectionPaid
from koppel_shared.service import Runtime, build_api
from koppel_shared.testing.fixtures import TEST_SIGNING_KEY
from koppel_shared.testing.service_checks import api_client
from koppel_shared.testing.serving import Served
from mandate_svc.adapters import unclaimed as unclaimed_store
from mandate_svc.domain.model import FeedMessage
from notify_svc.service_layer.ingest import record_event
from twikey_sandbox import create_app
from twikey_sandbox.testing import koppel_connection

from .support import PROBLEM, SERVICES, bearer, definition_of, migrated_databases, service_settings

pytestmark = pytest.mark.integration

SCOPES = ["erp", "operator", "internal"]

# Routes with a path parameter the walk does not call, each with the reason. Kept exact (asserted).
SKIPPED: dict[tuple[str, str], str] = {}

# Routes that look a caller-supplied business key up instead of an id: for another tenant's key
# they answer 200 with nothing in it (no mandate, not collectable) — the same answer as for a key
# nobody has, so it tells B nothing. Asserted as such below.
EMPTY_FOR_OTHERS: dict[tuple[str, str], str] = {
    ("GET", "/v1/customers/{customer_number}/mandates"): "customer view: B's (empty) view of that number",
}


@dataclass
class World:
    clients: dict[str, httpx.AsyncClient]
    a: dict[str, dict[str, str]]  # service -> tenant A's headers
    b: dict[str, dict[str, str]]  # service -> tenant B's headers
    tenant_a: uuid.UUID
    tenant_b: uuid.UUID
    path_values: dict[str, str] = field(default_factory=dict)  # path parameter -> A's value
    bodies: dict[tuple[str, str], Any] = field(default_factory=dict)
    markers: set[str] = field(default_factory=set)  # strings that are A's data

    def leaked(self, text: str, echoed: frozenset[str] | set[str] = frozenset()) -> set[str]:
        # What the caller put in the URL may come back (a 404 names the id it did not find).
        return {m for m in self.markers if m in text and not any(m in e for e in echoed)}


@pytest.fixture(scope="module")
async def world(broker_prefix: str, cleanup_exchange: None) -> AsyncIterator[World]:
    async with migrated_databases() as urls, contextlib.AsyncExitStack() as stack:
        sandbox = stack.enter_context(Served(create_app()))
        settings = {
            name: service_settings(
                name,
                urls[name],
                broker_prefix,
                **(
                    {"webhook_allow_http": True, "webhook_allowed_networks": ["127.0.0.1/32"]}
                    if name == "notify"
                    else {}
                ),
            )
            for name in SERVICES
        }
        sync_served = stack.enter_context(Served(build_api(definition_of("sync"), settings["sync"]), lifespan="on"))
        settings["mandate"].sync_url = sync_served.base  # type: ignore[attr-defined]
        clients = {"sync": await stack.enter_async_context(httpx.AsyncClient(base_url=sync_served.base, timeout=30))}
        for name in ("mandate", "collection", "bookkeeping", "notify"):
            clients[name] = await stack.enter_async_context(api_client(definition_of(name), settings[name]))
        tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
        w = World(
            clients=clients,
            a={n: bearer(settings[n], tenant_a, SCOPES) for n in SERVICES},
            b={n: bearer(settings[n], tenant_b, SCOPES) for n in SERVICES},
            tenant_a=tenant_a,
            tenant_b=tenant_b,
        )
        async with httpx.AsyncClient(timeout=30) as http:
            await _make_tenant_a(w, http, sandbox, settings)
        yield w


async def _make_tenant_a(w: World, http: httpx.AsyncClient, sandbox: Served, settings: dict[str, Any]) -> None:
    tag = uuid.uuid4().hex[:10]
    c, a = w.clients, w.a
    w.markers.add(str(w.tenant_a))
    registered = await c["sync"].post("/v1/tenants", headers=a["sync"], json={"name": f"Tenant A {tag}"})
    assert registered.status_code == 201, registered.text
    w.markers.add(f"Tenant A {tag}")
    # sync-svc: a token A made from the browser (B must neither see nor revoke it).
    made_token = await c["sync"].post(
        "/v1/tokens", headers=a["sync"], json={"label": f"ERP of A {tag}", "scopes": ["erp"], "ttl_days": 30}
    )
    assert made_token.status_code == 201, made_token.text
    w.path_values["token_id"] = made_token.json()["id"]
    w.markers |= {f"ERP of A {tag}", made_token.json()["id"], made_token.json()["token"]}

    # sync-svc: a Twikey connection (on a sandbox creditor) and a received webhook.
    made = (await http.post(f"{sandbox.base}/_sandbox/creditors", json={})).json()
    r = await c["sync"].put(
        "/v1/twikey/connection",
        headers=a["sync"],
        json=koppel_connection(made, sandbox.base),
    )
    assert r.status_code == 200, r.text
    from sync_svc.domain.signature import sign

    query = f"type=contract&mandateNumber=WHA{tag}&event=Sign"
    r = await c["sync"].get(
        f"/webhooks/twikey/{w.tenant_a}?{query}", headers={"X-Signature": sign(made["api_key"], query)}
    )
    assert r.status_code == 204, r.text
    w.markers |= {made["api_key"], f"WHA{tag}"}

    # mandate-svc: a mandate, prepared at the sandbox through sync-svc.
    customer = f"CUSTA{tag}"
    r = await c["mandate"].post(
        "/v1/mandates",
        headers=a["mandate"],
        json={
            "customer": {"number": customer, "name": f"Alice {tag}", "email": f"alice.{tag}@example.be"},
            "scheme": "CORE",
            "delivery": "link",
        },
    )
    assert r.status_code == 201, r.text
    m = r.json()
    w.path_values |= {"mandate_id": m["id"], "customer_number": customer}
    w.markers |= {m["id"], m["mandate_number"], m["sign_url"], customer, f"Alice {tag}", f"alice.{tag}@example.be"}
    # A mandate at Twikey that Koppel never created, waiting for A's operator.
    unclaimed = f"SBXU{tag}"
    signed = FeedMessage(
        twikey_event_id=f"mandate/{tag}", feed_seq=1, event_time=datetime.now(UTC), mandate_number=unclaimed,
        change="signed", scheme="CORE", state="SIGNED", customer_number=f"OTHER{tag}", name=f"Alice {tag}",
    )  # fmt: skip
    runtime = await Runtime.open("mandate", settings["mandate"], connect_broker=False)
    try:
        async with runtime.uow() as uow:
            await unclaimed_store.record(uow.session, str(w.tenant_a), signed, datetime.now(UTC))
            await uow.commit()
    finally:
        await runtime.close()
    w.path_values["mandate_number"] = unclaimed
    w.markers.add(unclaimed)

    # collection-svc: a policy, an invoice and a subscription.
    r = await c["collection"].put(
        "/v1/collection-policy", headers=a["collection"], json={"lead_days": 7, "max_amount_cents": 7_654_321}
    )
    assert r.status_code == 200, r.text
    today = date.today()
    r = await c["collection"].post(
        "/v1/invoices",
        headers=a["collection"],
        json={
            "invoice_number": f"INVA{tag}",
            "customer_number": customer,
            "customer_name": f"Alice {tag}",
            "customer_email": f"alice.{tag}@example.be",
            "amount_cents": 12_345,
            "invoice_date": today.isoformat(),
            "due_date": (today + timedelta(days=30)).isoformat(),
            "description": f"Invoice INVA{tag}",
        },
    )
    assert r.status_code == 201, r.text
    invoice = r.json()
    r = await c["collection"].post(
        "/v1/subscriptions",
        headers=a["collection"],
        json={"reference": f"SUBA{tag}", "customer_number": customer, "description": f"Plan {tag}"},
    )
    assert r.status_code == 201, r.text
    subscription = r.json()
    w.path_values |= {"invoice_id": invoice["id"], "subscription_id": subscription["id"]}
    w.markers |= {invoice["id"], f"INVA{tag}", subscription["id"], f"SUBA{tag}"}
    if invoice.get("collection"):
        w.markers.add(invoice["collection"]["collection_id"])

    # bookkeeping-svc: a Twinfield connection's settings, and a booking. No API makes bookings:
    # the collection.paid consumer does, so its handler makes this one, in its own transaction.
    r = await c["bookkeeping"].put(
        "/v1/twinfield/connection", headers=a["bookkeeping"], json={"office": f"OA{tag[:8]}"}
    )
    assert r.status_code == 200, r.text
    paid_data = CollectionPaid(
        collection_id=str(uuid.uuid4()),
        invoice_id=invoice["id"],
        invoice_number=f"INVA{tag}",
        customer_number=customer,
        customer_name=f"Alice {tag}",
        customer_email=f"alice.{tag}@example.be",
        amount_cents=12_345,
        status="paid",
        method="direct_debit",
        twikey_transaction_id=f"77{tag[:6]}",
        paid_at=datetime.now(UTC),
        version=3,
        updated_at=datetime.now(UTC),
    )
    paid = new_event(paid_data, tenant_id=w.tenant_a)
    runtime = await Runtime.open("bookkeeping", settings["bookkeeping"], connect_broker=False)
    try:
        async with runtime.uow() as uow:
            await intake.on_collection_paid(paid, paid_data, uow)
            await uow.commit()
        # The same payment announced again with another amount: a payment conflict.
        again = paid_data.model_copy(update={"amount_cents": 12_346})
        async with runtime.uow() as uow:
            await intake.on_collection_paid(new_event(again, tenant_id=w.tenant_a), again, uow)
            await uow.commit()
        async with runtime.engine.connect() as conn:
            booking_id = await conn.scalar(
                sa.text("SELECT id FROM bookings WHERE tenant_id = :t"), {"t": str(w.tenant_a)}
            )
            conflict_id = await conn.scalar(
                sa.text("SELECT id FROM booking_conflicts WHERE tenant_id = :t"), {"t": str(w.tenant_a)}
            )
        # A reconciliation run (no worker runs it here) and a difference it found.
        run = await c["bookkeeping"].post("/v1/reconciliation/runs", headers=a["bookkeeping"], json={})
        assert run.status_code == 202, run.text
        difference_id = uuid.uuid4()
        async with runtime.engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO reconcile_differences (id, tenant_id, run_id, kind, key, detail, fix, status) "
                    "VALUES (:id, :t, :run, 'paid_not_booked', :key, :detail, 'book', 'open')"
                ),
                {"id": difference_id, "t": w.tenant_a, "run": uuid.UUID(run.json()["id"]),
                 "key": f"transaction:77{tag[:6]}", "detail": f"paid at Twikey, not booked: INVA{tag}"},
            )  # fmt: skip
    finally:
        await runtime.close()
    w.path_values |= {"booking_id": str(booking_id), "conflict_id": str(conflict_id)}
    w.path_values |= {"run_id": run.json()["id"], "difference_id": str(difference_id)}
    w.markers |= {run.json()["id"], str(difference_id)}
    w.markers |= {str(booking_id), f"OA{tag[:8]}", paid.data["collection_id"], f"77{tag[:6]}"}

    # notify-svc: a webhook endpoint, and an event (as the consumer records it) with its delivery.
    r = await c["notify"].post(
        "/v1/webhook-endpoints",
        headers=a["notify"],
        json={"url": f"http://127.0.0.1:9/hooks/{tag}", "event_types": ["*"], "description": f"ERP of {tag}"},
    )
    assert r.status_code == 201, r.text
    endpoint = r.json()
    runtime = await Runtime.open("notify", settings["notify"], connect_broker=False)
    try:
        async with runtime.uow() as uow:
            assert await record_event(uow, paid) == 1
            await uow.commit()
    finally:
        await runtime.close()
    r = await c["notify"].get("/v1/deliveries", headers=a["notify"])
    [delivery] = r.json()["data"]
    w.path_values |= {"endpoint_id": endpoint["id"], "delivery_id": delivery["id"]}
    w.markers |= {endpoint["id"], endpoint["secret"], f"http://127.0.0.1:9/hooks/{tag}", delivery["id"], str(paid.id)}

    # Bodies where the schema's example would not name A's things or would change nothing.
    w.bodies = {
        ("PATCH", "/v1/subscriptions/{subscription_id}"): {"description": "taken over by B", "active": False},
        ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): {"url": "http://127.0.0.1:9/b", "enabled": False},
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/redeliver"): {"event_id": str(paid.id)},
        ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): {"grace_seconds": 0},
    }


def _example_body(spec: dict[str, Any], operation: dict[str, Any]) -> Any:
    """The first example of the request body's schema (``$ref`` or optional ``anyOf``), or {}."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = content.get("schema", {})
    for option in schema.get("anyOf", [schema]):
        ref = option.get("$ref")
        if ref:
            examples = spec["components"]["schemas"][ref.rsplit("/", 1)[-1]].get("examples")
            if examples:
                return examples[0]
    return {}


async def _snapshot(w: World) -> dict[str, Any]:
    """What A sees of A's resources (compared before and after B's attempts)."""
    seen = {}
    for service, client in w.clients.items():
        spec = (await client.get("/openapi.json")).json()
        for path, operations in spec["paths"].items():
            # Internal reads of Twikey's own record (reconciliation) show Twikey's data, not what
            # Koppel stored for A; they are still walked as B below.
            if "get" not in operations or _needs_query(operations["get"]) or path.startswith("/internal/"):
                continue
            url = path.format(**w.path_values) if "{" in path else path
            r = await client.get(url, headers=w.a[service])
            assert r.status_code == 200, (service, url, r.text)
            seen[f"{service} {url}"] = _stable(r.json())
    return seen


def _needs_query(operation: dict[str, Any]) -> bool:
    return any(p["in"] == "query" and p.get("required") for p in operation.get("parameters", []))


def _stable(body: Any) -> Any:
    # A list's paging cursor may carry the time of the read; the data must not change.
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if k not in ("next_cursor", "next_before")}
    return body


async def test_another_tenant_is_refused_on_every_route_and_sees_none_of_this_tenants_data(world: World) -> None:
    w = world
    before = await _snapshot(w)
    assert len(before) >= 15, sorted(before)  # A sees its own things on every GET route
    sees_own = {key for key, body in before.items() if w.leaked(json.dumps(body))}

    problems: list[str] = []
    skipped: set[tuple[str, str]] = set()
    tried: list[str] = []
    for service, client in w.clients.items():
        spec = (await client.get("/openapi.json")).json()
        for path, operations in spec["paths"].items():
            params = [p for p in path.split("{")[1:]]
            names = [p.split("}")[0] for p in params]
            for method, operation in operations.items():
                route = (method.upper(), path)
                if not names:
                    continue
                if route in SKIPPED:
                    skipped.add(route)
                    continue
                unknown = [n for n in names if n not in w.path_values]
                if unknown:
                    problems.append(f"{service} {route}: no value for {unknown} (fill it or add it to SKIPPED)")
                    continue
                url = path.format(**w.path_values)
                echoed = {w.path_values[n] for n in names}
                kwargs: dict[str, Any] = {}
                if "requestBody" in operation:
                    kwargs["json"] = w.bodies.get(route, _example_body(spec, operation))
                r = await client.request(route[0], url, headers=w.b[service], **kwargs)
                tried.append(f"{service} {route[0]} {path} -> {r.status_code}")
                leaked = w.leaked(r.text, echoed)
                if leaked:
                    problems.append(f"{service} {route}: B's answer carries A's data {sorted(leaked)}: {r.text[:300]}")
                if route in EMPTY_FOR_OTHERS:
                    body = r.json()
                    if r.status_code != 200 or body.get("mandates") != [] or body.get("mandate") is not None:
                        problems.append(
                            f"{service} {route}: expected B's empty view, got {r.status_code} {r.text[:300]}"
                        )
                    continue
                if r.status_code not in (403, 404) or not r.headers.get("content-type", "").startswith(PROBLEM):
                    problems.append(f"{service} {route}: {r.status_code} {r.text[:300]}")
                elif not r.json().get("code"):
                    problems.append(f"{service} {route}: problem without a code: {r.text[:300]}")

            # List and singleton routes: B's view carries none of A's data.
            get = operations.get("get")
            if get is not None and not names:
                r = await client.get(path, headers=w.b[service])
                tried.append(f"{service} GET {path} (as B) -> {r.status_code}")
                if r.status_code >= 500:
                    problems.append(f"{service} GET {path}: {r.status_code} {r.text[:300]}")
                leaked = w.leaked(r.text)
                if leaked:
                    problems.append(f"{service} GET {path}: B's list carries A's data {sorted(leaked)}: {r.text[:300]}")

    assert problems == [], "\n".join([*problems, "", "tried:", *tried])
    assert skipped == set(SKIPPED) and len(SKIPPED) <= 3, "SKIPPED names routes that no longer exist"
    # The walk reached every resource kind (a route missing from the OpenAPI would shrink this).
    path_routes = [t for t in tried if "(as B)" not in t]
    assert len(path_routes) >= 19, path_routes
    used = {name for t in path_routes for name in w.path_values if "{" + name + "}" in t}
    assert used == set(w.path_values), set(w.path_values) - used
    # Where A sees its own data, B was asked the same and saw none (the markers can fail).
    expected_own = {
        "mandate /v1/mandates",
        "collection /v1/invoices",
        "collection /v1/subscriptions",
        "sync /v1/twikey/connection",
        "sync /v1/twikey/webhooks",
        "sync /v1/tokens",
        "bookkeeping /v1/bookings",
        "bookkeeping /v1/twinfield/connection",
        "notify /v1/webhook-endpoints",
        "notify /v1/deliveries",
        "notify /v1/events",
    }
    assert expected_own <= sees_own, sorted(expected_own - sees_own)

    # B's singletons are B's own: defaults, not A's settings or counts.
    c, b = w.clients, w.b
    policy = (await c["collection"].get("/v1/collection-policy", headers=b["collection"])).json()
    assert policy["version"] == 0 and policy["max_amount_cents"] != 7_654_321
    twinfield = (await c["bookkeeping"].get("/v1/twinfield/connection", headers=b["bookkeeping"])).json()
    assert twinfield["status"] == "not_connected" and sum(twinfield["bookings"]["tabs"].values()) == 0
    assert (await c["sync"].get("/v1/twikey/connection", headers=b["sync"])).status_code == 404

    # Nothing B did changed anything of A's.
    after = await _snapshot(w)
    assert after == before


async def test_every_route_refuses_tokens_no_issuer_signed_and_service_tokens_outside_internal(world: World) -> None:
    """Every route that asks for a token, in every service: a token signed by a key not listed, by
    another key under the listed kid, or HS256 keyed with the (public) key — algorithm confusion —
    is 401 ``invalid_token``; a service token acting for A is 403 outside ``/internal``. None of
    it changes anything of A's."""
    w = world
    before = await _snapshot(w)
    tenant = str(w.tenant_a)
    public = TEST_SIGNING_KEY.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    now = int(datetime.now(UTC).timestamp())
    claims = {"iss": "koppel", "sub": "x", "tid": tenant, "scope": " ".join(SCOPES), "iat": now, "exp": now + 600}
    forged = {
        "unknown kid": issue_token(SigningKey.generate("elsewhere"), w.tenant_a, SCOPES),
        "known kid, other key": issue_token(SigningKey.generate(TEST_SIGNING_KEY.kid), w.tenant_a, SCOPES),
        "HS256 keyed with the public key": jwt.encode(
            claims, public, algorithm="HS256", headers={"kid": TEST_SIGNING_KEY.kid}
        ),
    }
    service_token = {
        "Authorization": f"Bearer {issue_service_token(TEST_SIGNING_KEY, 'mandate')}",
        TENANT_HEADER: tenant,
    }
    problems: list[str] = []
    guarded = internal = 0
    for service, client in w.clients.items():
        spec = (await client.get("/openapi.json")).json()
        for path, operations in spec["paths"].items():
            url = re.sub(r"\{(\w+)\}", lambda m: w.path_values.get(m.group(1), str(uuid.uuid4())), path)
            for method, operation in operations.items():
                body = {"json": _example_body(spec, operation)} if "requestBody" in operation else {}
                bare = await client.request(method.upper(), url, **body)
                if bare.status_code != 401:
                    continue  # a route without a token (health, webhooks, the OAuth callback)
                guarded += 1
                name = f"{service} {method.upper()} {path}"
                for what, token in forged.items():
                    r = await client.request(method.upper(), url, headers={"Authorization": f"Bearer {token}"}, **body)
                    if r.status_code != 401 or r.json().get("code") != "invalid_token":
                        problems.append(f"{name} ({what}): {r.status_code} {r.text[:200]}")
                r = await client.request(method.upper(), url, headers=service_token, **body)
                if path.startswith("/internal/"):
                    internal += 1
                    if r.status_code in (401, 403):
                        problems.append(f"{name} (service token): {r.status_code} {r.text[:200]}")
                elif r.status_code != 403 or r.json().get("code") != "insufficient_scope":
                    problems.append(
                        f"{service} {method.upper()} {path} (service token): {r.status_code} {r.text[:200]}"
                    )
    assert problems == [], "\n".join(problems)
    assert guarded >= 40 and internal >= 3, (guarded, internal)
    assert await _snapshot(w) == before
