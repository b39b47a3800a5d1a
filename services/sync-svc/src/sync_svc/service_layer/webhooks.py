"""Receiving Twikey's webhooks: verify, store, nudge the worker — and nothing slower.

A webhook is only a nudge (reference §9: no payment data, the feed is the truth). The request
path is: signature check with the cached key → INSERT, group-committed with the other webhooks
arriving at the same moment (the stored webhook doubles as the "drain this tenant" request) → a
throttled NOTIFY in the same commit → answer. The worker drains.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import Any
from urllib.parse import parse_qsl

import sqlalchemy as sa

from koppel_shared.crypto import SecretDecryptionError
from koppel_shared.db import UnitOfWork
from koppel_shared.errors import Malformed, NotFound, TooLong, Unauthenticated
from koppel_shared.logging import get_logger
from sync_svc.adapters.orm import received_webhooks
from sync_svc.adapters.webhook_store import WebhookRow
from sync_svc.domain import signature
from sync_svc.service_layer.resources import Resources

log = get_logger(__name__)

_KEY = "SELECT api_key_enc FROM twikey_connections WHERE tenant_id = $1"
# Twikey's webhooks are a few hundred bytes; anything near this is not one of them.
MAX_QUERY_LENGTH = 4096
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def parse_query(raw_query: str) -> dict[str, str]:
    """The webhook's parameters, strictly. A query no Twikey webhook would send (an invalid
    escape, bytes that are not UTF-8, a parameter given twice) is refused rather than guessed at:
    which of two ``type`` values would be the right one?"""
    if _BAD_ESCAPE.search(raw_query):
        raise ValueError("invalid percent-escape")
    pairs = parse_qsl(raw_query, keep_blank_values=True, strict_parsing=True, errors="strict")
    params = dict(pairs)
    if len(params) != len(pairs):
        raise ValueError("a parameter is given more than once")
    return params


async def api_key_for(resources: Resources, secrets: Any, tenant_id: uuid.UUID) -> str | None:
    cached, key = resources.keys.get(tenant_id)
    if cached:
        return key
    # One lookup per tenant at a time: when the cached key expires under load, the requests that
    # arrive meanwhile share that lookup instead of each taking a connection and decrypting.
    lookup = resources.key_lookups.get(tenant_id)
    if lookup is None:
        lookup = asyncio.ensure_future(_look_up_key(resources, secrets, tenant_id))
        resources.key_lookups[tenant_id] = lookup
        lookup.add_done_callback(lambda _: resources.key_lookups.pop(tenant_id, None))
    return await asyncio.shield(lookup)  # a request that goes away does not cancel the others' lookup


async def _look_up_key(resources: Resources, secrets: Any, tenant_id: uuid.UUID) -> str | None:
    pool = await resources.pg()
    encrypted = await pool.fetchval(_KEY, tenant_id)
    try:
        key = secrets.decrypt(encrypted) if encrypted else None
    except SecretDecryptionError:
        log.error("webhook.key_undecryptable", tenant_id=str(tenant_id))
        key = None
    resources.keys.put(tenant_id, key)
    return key


async def receive(
    resources: Resources, secrets: Any, tenant_id: uuid.UUID, raw_query: str, given_signature: str | None
) -> None:
    """Verify and store one webhook (committed on return). Refusals are application errors and store nothing."""
    api_key = await api_key_for(resources, secrets, tenant_id)
    if api_key is None:
        log.warning("webhook.unknown_tenant", tenant_id=str(tenant_id))
        raise NotFound("unknown_tenant", "no Twikey connection for this tenant")
    if not signature.verify(api_key, raw_query, given_signature):
        log.warning(
            "webhook.signature_refused",
            tenant_id=str(tenant_id),
            reason="missing" if not given_signature else "mismatch",
            query=raw_query[:300],
        )
        raise Unauthenticated("invalid_signature", "X-Signature is missing or does not match the query string")
    if len(raw_query) > MAX_QUERY_LENGTH:
        log.warning("webhook.too_large", tenant_id=str(tenant_id), length=len(raw_query))
        raise TooLong("webhook_too_large", f"a Twikey webhook's query string is at most {MAX_QUERY_LENGTH} characters")
    try:
        params = parse_query(raw_query)
    except ValueError:  # UnicodeDecodeError included
        params = {}
    if not params.get("type"):
        log.warning("webhook.malformed", tenant_id=str(tenant_id), query=raw_query[:300])
        raise Malformed("malformed_webhook", "a Twikey webhook carries at least a type parameter")
    row = WebhookRow(
        tenant_id=tenant_id,
        query=raw_query,
        type=params["type"][:50],
        event=params.get("event", "")[:50] or None,
        mandate_number=params.get("mandateNumber", "")[:50] or None,
    )
    await (await resources.writer()).store(row, notify=resources.should_notify(tenant_id))


async def recent(uow: UnitOfWork, tenant_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    rows = await uow.session.execute(
        sa.select(received_webhooks)
        .where(received_webhooks.c.tenant_id == tenant_id)
        .order_by(received_webhooks.c.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": r.id,
            "received_at": r.received_at,
            "type": r.type,
            "event": r.event,
            "mandate_number": r.mandate_number,
            "query": r.query,
            "drained_at": r.drained_at,
        }
        for r in rows
    ]
