"""Webhook endpoints of a tenant: create (the secret is made here and shown once), read, change,
delete, rotate the secret, and disable (by the ERP, on 410 Gone, or after failing too long).

Every function takes the tenant id and filters on it; another tenant's endpoint is "not found".
"""

from __future__ import annotations

import asyncio
import secrets as random_secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult

from koppel_shared.crypto import SecretBox
from koppel_shared.db import UnitOfWork
from koppel_shared.errors import Invalid, NotFound
from koppel_shared.logging import get_logger
from notify_svc.adapters.network import Resolver, allowed_addresses
from notify_svc.adapters.orm import deliveries, webhook_endpoints
from notify_svc.domain import subscriptions
from notify_svc.domain.signing import SECRET_BYTES, format_secret
from notify_svc.domain.urls import UrlPolicy, UrlRefused, parse_url

log = get_logger(__name__)

DNS_TIMEOUT = 5.0


@dataclass(frozen=True)
class Guard:
    """What a URL is checked against when an endpoint is saved."""

    policy: UrlPolicy
    resolve: Resolver


def new_secret() -> str:
    return format_secret(random_secrets.token_bytes(SECRET_BYTES))


async def check_url(url: str, guard: Guard) -> str:
    try:
        target = parse_url(url, guard.policy)
        await asyncio.wait_for(allowed_addresses(target, guard.policy, guard.resolve), timeout=DNS_TIMEOUT)
    except TimeoutError:
        raise Invalid("url_unresolvable", "the URL's host name did not resolve in time") from None
    except UrlRefused as exc:
        raise Invalid(exc.code, str(exc), errors=[{"field": "url", "rule": exc.code, "message": str(exc)}]) from exc
    return url.strip()


def check_patterns(patterns: list[str]) -> list[str]:
    cleaned = subscriptions.normalise(patterns)
    if not cleaned:
        raise Invalid("event_types_empty", "subscribe to at least one event type pattern, e.g. 'mandate.*'")
    if len(cleaned) > subscriptions.MAX_PATTERNS:
        raise Invalid("event_types_too_many", f"at most {subscriptions.MAX_PATTERNS} patterns")
    errors = [
        {"field": "event_types", "rule": "event_type_pattern", "message": msg}
        for msg in (subscriptions.pattern_error(p) for p in cleaned)
        if msg
    ]
    if errors:
        raise Invalid("event_types_invalid", errors[0]["message"], errors=errors)
    return cleaned


_COLUMNS = [
    webhook_endpoints.c.id,
    webhook_endpoints.c.url,
    webhook_endpoints.c.description,
    webhook_endpoints.c.event_types,
    webhook_endpoints.c.enabled,
    webhook_endpoints.c.disabled_reason,
    webhook_endpoints.c.disabled_at,
    webhook_endpoints.c.consecutive_failures,
    webhook_endpoints.c.failing_since,
    webhook_endpoints.c.last_success_at,
    webhook_endpoints.c.last_failure_at,
    webhook_endpoints.c.previous_secret_until,
    webhook_endpoints.c.created_at,
    webhook_endpoints.c.updated_at,
]


def _view(row: Any) -> dict[str, Any]:
    view = dict(row._mapping)
    view["status"] = "enabled" if view["enabled"] else "disabled"
    return view


async def create_endpoint(
    uow: UnitOfWork,
    box: SecretBox,
    guard: Guard,
    tenant_id: uuid.UUID,
    url: str,
    event_types: list[str],
    enabled: bool = True,
    description: str | None = None,
) -> tuple[dict[str, Any], str]:
    """The new endpoint and its secret (the only time the secret is shown)."""
    url = await check_url(url, guard)
    patterns = check_patterns(event_types)
    secret = new_secret()
    endpoint_id = uuid.uuid4()
    await uow.session.execute(
        sa.insert(webhook_endpoints).values(
            id=endpoint_id,
            tenant_id=tenant_id,
            url=url,
            description=description,
            event_types=patterns,
            enabled=enabled,
            disabled_reason=None if enabled else "disabled by the tenant",
            disabled_at=None if enabled else sa.func.now(),
            secret=box.encrypt(secret),
        )
    )
    view = await get_endpoint(uow, tenant_id, endpoint_id)
    return view, secret


async def get_endpoint(uow: UnitOfWork, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> dict[str, Any]:
    row = (
        await uow.session.execute(
            sa.select(*_COLUMNS).where(
                webhook_endpoints.c.tenant_id == tenant_id, webhook_endpoints.c.id == endpoint_id
            )
        )
    ).first()
    if row is None:
        raise NotFound("endpoint_not_found", f"no webhook endpoint {endpoint_id}")
    return _view(row)


async def list_endpoints(uow: UnitOfWork, tenant_id: uuid.UUID, enabled: bool | None = None) -> list[dict[str, Any]]:
    query = sa.select(*_COLUMNS).where(webhook_endpoints.c.tenant_id == tenant_id)
    if enabled is not None:
        query = query.where(webhook_endpoints.c.enabled == enabled)
    rows = await uow.session.execute(query.order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.id))
    return [_view(r) for r in rows]


async def update_endpoint(
    uow: UnitOfWork,
    guard: Guard,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    changes: dict[str, Any],
) -> dict[str, Any]:
    current = await get_endpoint(uow, tenant_id, endpoint_id)
    values: dict[str, Any] = {}
    if changes.get("url") is not None:
        values["url"] = await check_url(changes["url"], guard)
    if changes.get("event_types") is not None:
        values["event_types"] = check_patterns(changes["event_types"])
    if "description" in changes:
        values["description"] = changes["description"]
    enabled = changes.get("enabled")
    if enabled is True and not current["enabled"]:
        # A fresh start: the failure streak that disabled it is forgotten.
        values.update(enabled=True, disabled_reason=None, disabled_at=None, consecutive_failures=0, failing_since=None)
    if values:
        values["updated_at"] = sa.func.now()
        await uow.session.execute(
            sa.update(webhook_endpoints)
            .where(webhook_endpoints.c.tenant_id == tenant_id, webhook_endpoints.c.id == endpoint_id)
            .values(**values)
        )
    if enabled is False and current["enabled"]:
        await disable_endpoint(uow, tenant_id, endpoint_id, "disabled by the tenant")
    return await get_endpoint(uow, tenant_id, endpoint_id)


async def delete_endpoint(uow: UnitOfWork, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
    result = await uow.session.execute(
        sa.delete(webhook_endpoints).where(
            webhook_endpoints.c.tenant_id == tenant_id, webhook_endpoints.c.id == endpoint_id
        )
    )
    if not cast("CursorResult[Any]", result).rowcount:
        raise NotFound("endpoint_not_found", f"no webhook endpoint {endpoint_id}")


async def rotate_secret(
    uow: UnitOfWork, box: SecretBox, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, grace: timedelta
) -> tuple[str, datetime | None]:
    """A new secret; the old one keeps signing (a second signature) for ``grace``."""
    row = (
        await uow.session.execute(
            sa.select(webhook_endpoints.c.secret)
            .where(webhook_endpoints.c.tenant_id == tenant_id, webhook_endpoints.c.id == endpoint_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound("endpoint_not_found", f"no webhook endpoint {endpoint_id}")
    secret = new_secret()
    until = datetime.now(UTC) + grace if grace.total_seconds() > 0 else None
    await uow.session.execute(
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.id == endpoint_id)
        .values(
            secret=box.encrypt(secret),
            previous_secret=row.secret if until else None,
            previous_secret_until=until,
            updated_at=sa.func.now(),
        )
    )
    return secret, until


async def disable_endpoint(uow: UnitOfWork, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, reason: str) -> bool:
    """Disable with a reason and cancel what was still queued for it (redeliver after enabling
    again). False if it was already disabled."""
    result = await uow.session.execute(
        sa.update(webhook_endpoints)
        .where(
            webhook_endpoints.c.tenant_id == tenant_id,
            webhook_endpoints.c.id == endpoint_id,
            webhook_endpoints.c.enabled,
        )
        .values(enabled=False, disabled_reason=reason, disabled_at=sa.func.now(), updated_at=sa.func.now())
    )
    if not cast("CursorResult[Any]", result).rowcount:
        return False
    await uow.session.execute(
        sa.update(deliveries)
        .where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.status == "pending")
        .values(
            status="cancelled",
            next_attempt_at=None,
            completed_at=sa.func.now(),
            last_error=f"endpoint disabled: {reason}",
        )
    )
    return True
