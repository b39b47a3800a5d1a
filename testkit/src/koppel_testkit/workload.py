"""Load for a running Koppel: what benchmarks and the chaos run drive it with, and how they check
the outcome in the sandboxes' own records.

- ``new_tenant`` creates a tenant with its own Twikey creditor and Twinfield organisation and
  office in the sandboxes, and wires it as an operator would (``demo.wire_tenant``).
- ``prepare_payments`` plays the ERP and the debtor up to the point where money can arrive:
  mandates signed, sales invoices in Twinfield, invoices posted to Koppel, collections at Twikey.
- ``prepare_paylinks`` does the same for customers without a mandate: each invoice gets a Twikey
  pay link instead of a collection.
- ``pay`` plays the bank and the debtor: each transaction (or pay link) paid at the Twikey
  sandbox, optionally paced.
- ``ErpReceiver`` is the ERP's webhook endpoint: it checks every Standard Webhooks signature,
  records each delivery and can fail on purpose.
- ``booked_invoice_numbers`` / ``matched_invoice_numbers`` / ``matched_times`` /
  ``twikey_collections`` count what happened, from Twinfield's and Twikey's side.

Synchronous httpx with generous timeouts; thread pools where concurrency pays.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook
from tenacity import Retrying

from koppel_cli.demo import TWINFIELD_CLIENT, TWINFIELD_OFFICE, Urls, wire_tenant
from koppel_shared.auth import SigningKey
from koppel_shared.http import RETRY_STATUSES, RetryableResponse, retry_policy

TIMEOUT = httpx.Timeout(60.0, connect=10.0)
SEED_CHUNK = 2000


class WorkloadError(Exception):
    pass


_RETRIED = (WorkloadError, httpx.HTTPError)


def _ok(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 400:
        raise WorkloadError(f"{what}: HTTP {response.status_code} {response.text[:400]}")
    return response.json() if response.content else None


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------------------- tenants
@dataclass
class Tenant:
    tenant_id: str
    name: str
    token: str
    twikey_api_key: str
    twinfield_organisation: str
    office: str


def new_tenant(
    urls: Urls,
    services: dict[str, str],
    signing_key: SigningKey,
    name: str,
    *,
    office: str | None = None,
    organisation: str | None = None,
) -> Tenant:
    """A fresh tenant: a Twikey creditor whose webhooks go to ``{gateway}/webhooks/twikey/{tenant}``,
    a Twinfield organisation with one office, an ERP + operator token, all wired."""
    from koppel_shared.auth import issue_token

    tenant_id = uuid.uuid4()
    tag = uuid.uuid4().hex[:6].upper()
    api_key = f"bench-{name}-{tag}".lower()
    organisation = organisation or f"ORG{tag}"
    office = office or f"NL{tag}"
    token = issue_token(signing_key, tenant_id, ["erp", "operator"], subject=f"tenant:{name}")
    with httpx.Client(timeout=TIMEOUT) as http:
        _ok(
            http.post(
                f"{urls.twikey_sandbox}/_sandbox/creditors",
                json={
                    "api_key": api_key,
                    "name": f"Creditor {name}",
                    "webhook_url": f"{urls.gateway}/webhooks/twikey/{tenant_id}",
                },
            ),
            "Twikey sandbox creditor",
        )
        _ok(
            http.post(
                f"{urls.twinfield_sandbox}/_sandbox/organisations",
                json={"code": organisation, "name": f"Organisation {name}", "offices": [{"code": office}]},
            ),
            "Twinfield sandbox organisation",
        )
    wire_tenant(
        urls,
        token,
        services,
        twikey_api_key=api_key,
        twinfield_organisation=organisation,
        twinfield_office=office,
        twinfield_client=TWINFIELD_CLIENT,
        name=name,
    )
    return Tenant(str(tenant_id), name, token, api_key, organisation, office)


# -------------------------------------------------------------------------------------- payments
@dataclass
class Payment:
    invoice_id: str
    invoice_number: str
    customer: str
    amount_cents: int
    twikey_tx: str | None = None  # the Twikey id: a transaction's, or a pay link's for kind paylink
    kind: str = "transaction"  # transaction | paylink (Twikey numbers them separately)


def prepare_payments(
    urls: Urls,
    token: str,
    n: int,
    mandates: int = 20,
    amount_cents: int = 12_100,
    prefix: str = "",
    *,
    office: str = TWINFIELD_OFFICE,
    concurrency: int = 8,
    timeout: float | None = None,
    allow_missing: bool = False,
    duplicate_requests: int = 1,
    say: Callable[[str], None] = lambda _: None,
) -> list[Payment]:
    """``n`` invoices collected at Twikey and waiting for the bank, over ``mandates`` signed
    mandates (customers round-robin). Sales invoices are seeded in Twinfield ``office`` first, so
    each payment can be matched. Returns the payments with their Twikey transaction ids.

    ``prefix`` makes customer and invoice numbers unique (a random one if empty). ``timeout``
    (default scales with ``n``) bounds the wait for the collections to reach Twikey; then it
    raises ``WorkloadError`` saying what is missing, or with ``allow_missing`` says so and returns
    every payment, those still without a transaction with ``twikey_tx=None``.

    ``duplicate_requests`` sends each mandate request that many times at once with one
    Idempotency-Key, as an ERP retrying impatiently does; Twikey must still get one mandate each.
    """
    tag = prefix or f"W{uuid.uuid4().hex[:5].upper()}-"
    customers = [f"{tag}C{i:04d}" for i in range(max(1, min(mandates, n)))]
    payments = [Payment("", f"{tag}INV-{i:06d}", customers[i % len(customers)], amount_cents) for i in range(n)]
    gw = urls.gateway
    with httpx.Client(timeout=TIMEOUT) as http:
        _sign_mandates(http, urls, token, customers, say, duplicate_requests)
        _seed_twinfield(http, urls.twinfield_sandbox, office, customers, payments)
        say(f"{len(customers)} mandates active, {n} sales invoices in Twinfield {office}")
    started = time.monotonic()
    _post_invoices(gw, token, payments, concurrency)
    say(f"{n} invoices posted in {time.monotonic() - started:.1f} s")
    within = timeout if timeout is not None else 120.0 + n * 0.05
    try:
        _wait_for_transactions(gw, token, payments, within, say)
    except WorkloadError as exc:
        if not allow_missing:
            raise
        say(str(exc))
    at_twikey = sum(1 for p in payments if p.twikey_tx)
    say(f"{at_twikey} collections at Twikey after {time.monotonic() - started:.1f} s")
    return payments


def prepare_paylinks(
    urls: Urls,
    token: str,
    n: int,
    amount_cents: int = 12_100,
    prefix: str = "",
    *,
    office: str = TWINFIELD_OFFICE,
    concurrency: int = 8,
    within: float = 120.0,
    say: Callable[[str], None] = lambda _: None,
) -> list[Payment]:
    """``n`` invoices of customers without a mandate: Koppel offers a Twikey pay link for each.
    Sales invoices are seeded in Twinfield first. Returns the payments with their pay-link ids."""
    tag = prefix or f"L{uuid.uuid4().hex[:5].upper()}-"
    payments = [Payment("", f"{tag}PL-{i:06d}", f"{tag}P{i:04d}", amount_cents, kind="paylink") for i in range(n)]
    with httpx.Client(timeout=TIMEOUT) as http:
        _seed_twinfield(http, urls.twinfield_sandbox, office, [p.customer for p in payments], payments)
    _post_invoices(urls.gateway, token, payments, concurrency)
    auth = _auth(token)
    deadline = time.monotonic() + within
    with httpx.Client(timeout=TIMEOUT) as http:
        for p in payments:
            while not p.twikey_tx:
                link = _ok(http.get(f"{urls.gateway}/v1/invoices/{p.invoice_id}", headers=auth), "invoice")["pay_link"]
                if link and link.get("paylink_id"):
                    p.twikey_tx = str(link["paylink_id"])
                elif time.monotonic() > deadline:
                    raise WorkloadError(f"no pay link for {p.invoice_number} after {within:.0f} s: {link}")
                else:
                    time.sleep(0.5)
    say(f"{n} pay links at Twikey")
    return payments


def _customer_body(number: str) -> dict[str, Any]:
    return {
        "number": number,
        "name": f"Klant {number}",
        "email": f"{number.lower()}@example.be",
        "language": "nl",
        "address": "Kerkstraat 1",
        "zip": "9000",
        "city": "Gent",
        "country": "BE",
    }


def _sign_mandates(
    http: httpx.Client,
    urls: Urls,
    token: str,
    customers: Sequence[str],
    say: Callable[[str], None],
    duplicate_requests: int = 1,
) -> None:
    auth = _auth(token)
    prepared: dict[str, dict[str, Any]] = {}

    def request(number: str) -> dict[str, Any]:
        def once() -> Any:
            return _ok(
                http.post(
                    f"{urls.gateway}/v1/mandates",
                    headers={**auth, "Idempotency-Key": f"workload-mandate-{number}"},
                    json={"customer": _customer_body(number), "scheme": "CORE", "delivery": "email"},
                ),
                f"prepare mandate for {number}",
            )

        # A lost answer or a 503 is retried with the same key, as an ERP does.
        return dict(_retry(once, within=120, every=1.0))

    with ThreadPoolExecutor(max(1, duplicate_requests)) as pool:
        for number in customers:
            answers = list(pool.map(request, [number] * max(1, duplicate_requests)))
            if len({a["id"] for a in answers}) != 1:
                raise WorkloadError(f"one Idempotency-Key gave several mandates for {number}: {answers}")
            prepared[number] = answers[0]

    def sign(number: str) -> Any:
        return _ok(
            http.post(
                f"{urls.twikey_sandbox}/_sandbox/mandates/{number}/sign",
                json={"iban": "BE68539007547034", "bic": "GKCCBEBB", "method": "itsme", "place": "Gent"},
            ),
            f"sign mandate {number}",
        )

    for mandate in prepared.values():
        if mandate.get("status") != "active":
            _retry(functools.partial(sign, str(mandate["mandate_number"])), within=60)
    pending = {m["id"] for m in prepared.values()}
    deadline = time.monotonic() + 120 + 2 * len(customers)
    while pending:
        for mandate_id in list(pending):
            reply = http.get(f"{urls.gateway}/v1/mandates/{mandate_id}", headers=auth)
            if reply.status_code == 200 and reply.json().get("status") == "active":
                pending.discard(mandate_id)
        if not pending:
            break
        if time.monotonic() > deadline:
            raise WorkloadError(f"{len(pending)} of {len(customers)} mandates not active: {sorted(pending)[:5]}")
        time.sleep(0.5)
    say(f"{len(customers)} mandates signed and active")


def _retry(action: Callable[[], Any], within: float, every: float = 0.5) -> Any:
    """Koppel's own outbound retry policy (``koppel_shared.http``), bounded by time rather than
    attempts, and retrying every refusal: a mandate invite not yet at the sandbox is a 404, a
    request still running under the same Idempotency-Key a 409."""
    for attempt in Retrying(**retry_policy(initial=every, max_wait=5 * every, within=within, on=_RETRIED)):
        with attempt:
            return action()
    raise AssertionError("unreachable")  # pragma: no cover


def _seed_twinfield(
    http: httpx.Client, base: str, office: str, customers: Sequence[str], payments: Sequence[Payment]
) -> None:
    body: dict[str, list[dict[str, Any]]]
    for start in range(0, len(customers), SEED_CHUNK):
        body = {
            "customers": [
                {"code": c, "name": f"Klant {c}", "email": f"{c.lower()}@example.be"}
                for c in customers[start : start + SEED_CHUNK]
            ]
        }
        _ok(http.post(f"{base}/_sandbox/offices/{office}/customers", json=body), "seed Twinfield customers")
    for start in range(0, len(payments), SEED_CHUNK):
        body = {
            "invoices": [
                {"customer": p.customer, "invoice_number": p.invoice_number, "amount_cents": p.amount_cents}
                for p in payments[start : start + SEED_CHUNK]
            ]
        }
        _ok(http.post(f"{base}/_sandbox/offices/{office}/invoices", json=body), "seed Twinfield invoices")


def _post_invoices(gateway: str, token: str, payments: Sequence[Payment], concurrency: int) -> None:
    today = date.today()
    auth = _auth(token)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(timeout=TIMEOUT, limits=limits) as http:

        def post(p: Payment) -> None:
            def once() -> Any:
                return _ok(
                    http.post(
                        f"{gateway}/v1/invoices",
                        headers={**auth, "Idempotency-Key": f"workload-invoice-{p.invoice_number}"},
                        json={
                            "invoice_number": p.invoice_number,
                            "customer_number": p.customer,
                            "customer_name": f"Klant {p.customer}",
                            "customer_email": f"{p.customer.lower()}@example.be",
                            "amount_cents": p.amount_cents,
                            "currency": "EUR",
                            "invoice_date": today.isoformat(),
                            # within the lead days (3): collected at once
                            "due_date": (today + timedelta(days=2)).isoformat(),
                            "description": f"Invoice {p.invoice_number}",
                        },
                    ),
                    f"post invoice {p.invoice_number}",
                )

            # The Idempotency-Key makes a repeat after a lost answer harmless.
            p.invoice_id = str(_retry(once, within=120, every=1.0)["id"])

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, payments))


def _wait_for_transactions(
    gateway: str, token: str, payments: Sequence[Payment], within: float, say: Callable[[str], None]
) -> None:
    """Page through the tenant's invoices (oldest first) from the oldest one still waiting: the
    cursor moves past every page whose invoices of ours all have their transaction."""
    by_id = {p.invoice_id: p for p in payments}
    missing = {p.invoice_id for p in payments if not p.twikey_tx}
    last_seen: dict[str, dict[str, Any]] = {}
    frontier: str | None = None
    deadline = time.monotonic() + within
    last_report = time.monotonic()
    auth = _auth(token)
    with httpx.Client(timeout=TIMEOUT) as http:
        while missing:
            cursor, contiguous = frontier, True
            while True:
                params: dict[str, Any] = {"limit": 200}
                if cursor:
                    params["cursor"] = cursor
                page = _ok(http.get(f"{gateway}/v1/invoices", headers=auth, params=params), "list invoices")
                for item in page["items"]:
                    payment = by_id.get(item["id"])
                    if payment is None or payment.twikey_tx:
                        continue
                    collection = item.get("collection") or {}
                    last_seen[item["id"]] = collection
                    if collection.get("twikey_transaction_id"):
                        payment.twikey_tx = str(collection["twikey_transaction_id"])
                        missing.discard(item["id"])
                    else:
                        contiguous = False
                cursor = page.get("next_cursor")
                if contiguous and cursor:
                    frontier = cursor
                if not cursor or not missing:
                    break
            if not missing:
                return
            if time.monotonic() - last_report > 15:
                say(f"  {len(payments) - len(missing)}/{len(payments)} collections at Twikey")
                last_report = time.monotonic()
            if time.monotonic() > deadline:
                states = Counter(
                    f"{c.get('status')}/{c.get('reason_code')}" if c else "no collection"
                    for c in (last_seen.get(i, {}) for i in missing)
                )
                examples = [by_id[i].invoice_number for i in sorted(missing)[:5]]
                raise WorkloadError(
                    f"after {within:.0f} s {len(missing)} of {len(payments)} invoices have no Twikey transaction "
                    f"(collection status/reason: {dict(states)}; e.g. {examples})"
                )
            time.sleep(1.0)


def pay(
    twikey_sandbox: str, payments: Sequence[Payment], rate: float | None = None, *, workers: int = 16
) -> dict[str, float]:
    """The bank pays each transaction at the Twikey sandbox; with ``rate`` (per second) on a
    fixed schedule (payment i at start + i/rate, so a slow answer does not shift the rest).
    Returns invoice number → ``time.time()`` when the sandbox accepted it (its PAID webhook is on
    its way by then)."""
    accepted: dict[str, float] = {}
    lock = threading.Lock()
    errors: list[str] = []
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with httpx.Client(timeout=TIMEOUT, limits=limits) as http:

        def mark(p: Payment) -> None:
            if not p.twikey_tx:
                with lock:
                    errors.append(f"{p.invoice_number}: no Twikey transaction")
                return
            what = f"paylinks/{p.twikey_tx}" if p.kind == "paylink" else f"transactions/{p.twikey_tx}"
            action = "pay" if p.kind == "paylink" else "paid"
            tries = 0
            try:
                # Koppel's own policy: timeouts, 5xx and 429 again after a backoff, other 4xx not.
                for attempt in Retrying(**retry_policy(attempts=5, initial=0.2, max_wait=2.0)):
                    with attempt:
                        tries += 1
                        reply = http.post(f"{twikey_sandbox}/_sandbox/{what}/{action}", json={})
                        if reply.status_code in RETRY_STATUSES:
                            raise RetryableResponse(reply)
            except (RetryableResponse, httpx.HTTPError) as exc:
                problem = repr(exc)
            else:
                paid = reply.status_code < 400
                if not paid and tries > 1:  # a repeat after a lost answer finds it paid already: accepted
                    paid = _paid_at_twikey(http, f"{twikey_sandbox}/_sandbox/{what}")
                if paid:
                    with lock:
                        accepted[p.invoice_number] = time.time()
                    return
                problem = f"HTTP {reply.status_code} {reply.text[:200]}"
            with lock:
                errors.append(f"{p.invoice_number} (tx {p.twikey_tx}): {problem}")

        with ThreadPoolExecutor(workers) as pool:
            start = time.monotonic()
            for i, p in enumerate(payments):
                if rate:
                    delay = start + i / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                pool.submit(mark, p)
    if errors:
        raise WorkloadError(f"{len(errors)} payments not accepted by the Twikey sandbox: {errors[:5]}")
    return accepted


def _paid_at_twikey(http: httpx.Client, url: str) -> bool:
    state = http.get(url)
    return state.status_code == 200 and state.json().get("state") in ("PAID", "paid")


# ---------------------------------------------------------------------------------- ERP receiver
@dataclass
class Delivery:
    webhook_id: str
    type: str
    data: dict[str, Any]
    received_at: float
    event_id: str = ""
    attempt_headers: dict[str, str] = field(default_factory=dict)

    @property
    def invoice_number(self) -> str | None:
        value = self.data.get("invoice_number")
        return str(value) if value is not None else None


def verify_signature(secret: str, headers: dict[str, str], body: bytes, tolerance: float | None = 300.0) -> bool:
    """Standard Webhooks, checked with the specification's own ``standardwebhooks`` package rather
    than notify-svc's signing code, so a signing bug in Koppel shows up here: HMAC-SHA256 over
    ``"{id}.{timestamp}.{body}"``; ``webhook-signature`` lists ``v1,<base64>`` entries, any one may
    match. ``tolerance=None`` skips the age check (for deliveries held until the secret was known)."""
    message_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (message_id and timestamp and signatures):
        return False
    try:
        sent = datetime.fromtimestamp(int(timestamp), UTC)
        base64.b64decode(secret.removeprefix("whsec_"), validate=True)  # the package is lenient here
        expected = Webhook(secret).sign(message_id, sent, body.decode())
    except (ValueError, EmptyWebhookSecretError):
        return False
    if tolerance is not None and abs(time.time() - sent.timestamp()) > tolerance:
        return False
    return any(hmac.compare_digest(entry, expected) for entry in signatures.split())


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sender that dies mid-request (the chaos drill kills notify-svc) is not our error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ErpReceiver:
    """The ERP's webhook endpoint on a free port of 127.0.0.1, in a thread.

    Every request whose signature checks out (once ``secret`` is set; requests that arrive before
    are checked when it is) is recorded in ``received`` — duplicates included, as an ERP sees
    them. Bad signatures get 401 and land in ``rejected``. With ``fail_rate`` > 0 that fraction
    of requests is answered 500 before anything is recorded (a flaky ERP); ``failed`` counts them.
    Thread-safe; ``fail_rate`` may be changed while it runs.
    """

    def __init__(self, fail_rate: float = 0.0, seed: int | None = None) -> None:
        self.fail_rate = fail_rate
        self.received: list[Delivery] = []
        self.rejected: list[dict[str, Any]] = []
        self.failed = 0
        self._secret: str | None = None
        self._unverified: list[tuple[Delivery, bytes]] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._first: dict[tuple[str, str], float] = {}
        self._types: dict[str, set[str]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def __enter__(self) -> ErpReceiver:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                status = receiver._handle({k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = _QuietServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="erp-receiver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the receiver is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}/webhooks"

    # -- the secret
    @property
    def secret(self) -> str | None:
        return self._secret

    @secret.setter
    def secret(self, value: str | None) -> None:
        with self._lock:
            self._secret = value
            pending, self._unverified = self._unverified, []
        for delivery, body in pending:
            self._accept_or_reject(delivery, body)

    # -- requests
    def _handle(self, headers: dict[str, str], body: bytes) -> int:
        now = time.time()
        with self._lock:
            if self.fail_rate > 0 and self._rng.random() < self.fail_rate:
                self.failed += 1
                return 500
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        delivery = Delivery(
            webhook_id=headers.get("webhook-id", ""),
            type=str(payload.get("type", "")),
            data=dict(payload.get("data") or {}),
            received_at=now,
            event_id=str(payload.get("id", "")),
            attempt_headers={k: v for k, v in headers.items() if k.startswith("webhook-")},
        )
        with self._lock:
            if self._secret is None:
                self._unverified.append((delivery, body))
                return 200
        return 200 if self._accept_or_reject(delivery, body) else 401

    def _accept_or_reject(self, delivery: Delivery, body: bytes) -> bool:
        secret = self._secret
        assert secret is not None
        # Held back until the secret was known: the timestamp was fine when it arrived.
        ok = verify_signature(secret, delivery.attempt_headers, body, tolerance=None)
        with self._lock:
            if not ok:
                self.rejected.append({"webhook_id": delivery.webhook_id, "received_at": delivery.received_at})
                return False
            self.received.append(delivery)
            number = delivery.invoice_number
            if number is not None:
                key = (delivery.type, number)
                first = self._first.get(key)
                if first is None or delivery.received_at < first:
                    self._first[key] = delivery.received_at
                self._types.setdefault(number, set()).add(delivery.type)
        return True

    # -- what was received
    def types_for(self, invoice_number: str) -> set[str]:
        with self._lock:
            return set(self._types.get(invoice_number, ()))

    def first_seen(self, type: str, invoice_number: str) -> float | None:
        with self._lock:
            return self._first.get((type, invoice_number))

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self.received)

    def event_ids(self) -> set[str]:
        """The ids of the events delivered (the ``id`` in the body), each once."""
        with self._lock:
            return {d.event_id for d in self.received}

    def count(self, type: str | None = None) -> int:
        with self._lock:
            return sum(1 for d in self.received if type is None or d.type == type)


def register_erp_endpoint(gateway: str, token: str, receiver: ErpReceiver, event_types: Iterable[str] = ("*",)) -> str:
    """Register the receiver as the token's tenant's webhook endpoint; returns the endpoint id and
    gives the receiver the signing secret."""
    with httpx.Client(timeout=TIMEOUT) as http:
        created = _ok(
            http.post(
                f"{gateway}/v1/webhook-endpoints",
                headers=_auth(token),
                json={"url": receiver.url, "event_types": list(event_types), "description": "workload ERP"},
            ),
            "register ERP webhook endpoint",
        )
    receiver.secret = str(created["secret"])
    return str(created["id"])


# ------------------------------------------------------------------------ the sandboxes' records
def _twinfield_transactions(http: httpx.Client, twinfield_sandbox: str, office: str) -> list[dict[str, Any]]:
    return list(_ok(http.get(f"{twinfield_sandbox}/_sandbox/offices/{office}/transactions"), "Twinfield records"))


def booked_invoice_numbers(
    twinfield_sandbox: str, office: str, *, memo_daybook: str = "MEMO", include_reversals: bool = False
) -> Counter[str]:
    """Payment MEMOs in Twinfield per invoice number (the customer line credits the debtor; a
    reversal's counter MEMO debits it and counts only with ``include_reversals``)."""
    with httpx.Client(timeout=TIMEOUT) as http:
        memos = _ok(
            http.get(f"{twinfield_sandbox}/_sandbox/offices/{office}/transactions", params={"daybook": memo_daybook}),
            "Twinfield MEMOs",
        )
    counts: Counter[str] = Counter()
    for memo in memos:
        numbers = {
            line["invoicenumber"]
            for line in memo["lines"]
            if line.get("dim2")
            and line.get("invoicenumber")
            and (include_reversals or line.get("debitcredit") == "credit")
        }
        counts.update(numbers)
    return counts


def _matches(twinfield_sandbox: str, office: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(sales invoice number, match record) for every match set touching a sales invoice."""
    with httpx.Client(timeout=TIMEOUT) as http:
        transactions = _twinfield_transactions(http, twinfield_sandbox, office)
        matches = _ok(http.get(f"{twinfield_sandbox}/_sandbox/offices/{office}/matches"), "Twinfield matches")
    sales = {(t["code"], t["number"]): t["invoicenumber"] for t in transactions if t.get("invoicenumber")}
    for match in matches:
        numbers = {sales.get((line["code"], line["number"])) for line in match["lines"]}
        for number in numbers - {None, ""}:
            assert number is not None
            yield number, match


def matched_invoice_numbers(twinfield_sandbox: str, office: str) -> Counter[str]:
    """How many match sets each sales invoice is part of, from Twinfield's records."""
    return Counter(number for number, _ in _matches(twinfield_sandbox, office))


def matched_times(twinfield_sandbox: str, office: str) -> dict[str, float]:
    """Invoice number → when Twinfield applied its first match (``time.time()`` clock)."""
    first: dict[str, float] = {}
    for number, match in _matches(twinfield_sandbox, office):
        at = float(match["matched_at"])
        if number not in first or at < first[number]:
            first[number] = at
    return first


def twikey_collections(twikey_sandbox: str, api_key: str) -> Counter[str]:
    """Twikey transactions per invoice number for one creditor. Koppel's ``ref`` at Twikey is its
    collection id; the invoice number is read from the message, which is the invoice's
    description — ``prepare_payments`` makes that ``Invoice <number>`` (Koppel's default too).
    A transaction without such a message counts under its ``ref``."""
    counts: Counter[str] = Counter()
    offset, page = 0, 10_000
    with httpx.Client(timeout=TIMEOUT) as http:
        while True:
            reply = _ok(
                http.get(
                    f"{twikey_sandbox}/_sandbox/transactions",
                    params={"api_key": api_key, "limit": page, "offset": offset},
                ),
                "Twikey transactions",
            )
            for t in reply["items"]:
                msg = str(t.get("msg") or "")
                counts[msg.removeprefix("Invoice ") if msg.startswith("Invoice ") else str(t.get("ref") or "")] += 1
            offset += len(reply["items"])
            if not reply["items"] or offset >= reply["total"]:
                break
    return counts


def twikey_mandates_per_customer(twikey_sandbox: str, api_key: str, prefix: str = "") -> Counter[str]:
    """Mandates at Twikey per customer number (those starting with ``prefix``), for one creditor."""
    with httpx.Client(timeout=TIMEOUT) as http:
        reply = _ok(
            http.get(f"{twikey_sandbox}/_sandbox/mandates", params={"api_key": api_key, "limit": 10_000}),
            "Twikey mandates",
        )
    return Counter(str(m["customer_number"]) for m in reply["items"] if str(m["customer_number"]).startswith(prefix))


def reconcile(gateway: str, token: str, within: float = 300.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run reconciliation for the token's tenant (through the gateway) and wait for it: the run and
    its open differences (Twikey's record vs Koppel's bookings vs Twinfield's MEMOs and matches)."""
    auth = _auth(token)
    deadline = time.monotonic() + within
    with httpx.Client(timeout=TIMEOUT, headers=auth) as http:
        run = _ok(http.post(f"{gateway}/v1/reconciliation/runs", json={}), "start reconciliation")
        while run["status"] in ("requested", "running"):
            if time.monotonic() > deadline:
                raise WorkloadError(f"reconciliation run {run['id']} not done after {within:.0f} s: {run}")
            time.sleep(0.5)
            run = _ok(http.get(f"{gateway}/v1/reconciliation/runs/{run['id']}"), "reconciliation run")
        if run["status"] != "done":
            raise WorkloadError(f"reconciliation run {run['id']} failed: {run.get('error')}")
        page = _ok(
            http.get(
                f"{gateway}/v1/reconciliation/runs/{run['id']}/differences", params={"status": "open", "limit": 1000}
            ),
            "reconciliation differences",
        )
    return dict(run), list(page["items"])
