"""Deliveries: claiming the due ones (safe with several workers), recording each attempt and
what follows from it, the delivery log, and manual redelivery.

A claim is a short transaction: due deliveries are locked ``FOR UPDATE SKIP LOCKED`` (another
worker skips them instead of waiting), their attempt counter goes up and they are leased — moved
``lease`` seconds into the future — then the lock is released before any HTTP is sent. A worker
that dies mid-delivery leaves the lease to run out and another worker tries again (at least
once). The claim takes at most the endpoint's remaining room (its in-flight limit minus what is
already in flight) per endpoint and skips the endpoints the worker names (full, or paused by their
circuit breaker), so one endpoint's backlog stays in the database instead of filling the worker.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.dialects.postgresql import ARRAY

from koppel_shared.db import UnitOfWork
from koppel_shared.logging import get_logger
from koppel_shared.web.errors import Problem
from notify_svc.adapters.orm import deliveries, delivery_attempts, events, webhook_endpoints
from notify_svc.domain.delivery import GONE_REASON, DisablePolicy, Outcome, classify, next_delay
from notify_svc.domain.subscriptions import subscribed
from notify_svc.service_layer.endpoints import disable_endpoint, get_endpoint
from notify_svc.service_layer.ingest import wake_dispatchers

log = get_logger(__name__)

ENDPOINTS_DISABLED = Counter(
    "koppel_notify_endpoints_disabled_total", "Webhook endpoints disabled by notify-svc", ["reason"]
)
DELIVERY_ATTEMPTS = Counter("koppel_notify_delivery_attempts_total", "Webhook delivery attempts", ["outcome"])

_CLAIM = sa.text(
    """
    WITH due AS (
        SELECT endpoint_id, min(next_attempt_at) AS oldest FROM deliveries
        WHERE status = 'pending' AND next_attempt_at <= now() AND NOT (endpoint_id = ANY(:skip))
          AND (CAST(:only AS uuid[]) IS NULL OR endpoint_id = ANY(:only))
        GROUP BY endpoint_id
    ),
    -- The endpoints that have waited longest go first: when the worker is short of room, the
    -- same endpoints do not win every claim.
    capacity AS (
        SELECT e.id, :per_endpoint - coalesce(busy.n, 0) AS room
        FROM due JOIN webhook_endpoints e ON e.id = due.endpoint_id AND e.enabled
        LEFT JOIN unnest(CAST(:busy_ids AS uuid[]), CAST(:busy_counts AS int[])) AS busy(id, n) ON busy.id = e.id
        WHERE :per_endpoint - coalesce(busy.n, 0) > 0
        ORDER BY due.oldest
        LIMIT :n
    ),
    claimed AS (
        SELECT picked.id FROM capacity
        CROSS JOIN LATERAL (
            SELECT d.id FROM deliveries d
            WHERE d.endpoint_id = capacity.id AND d.status = 'pending' AND d.next_attempt_at <= now()
            ORDER BY d.next_attempt_at
            LIMIT capacity.room
            FOR UPDATE SKIP LOCKED
        ) AS picked
        LIMIT :n
    )
    UPDATE deliveries d
    SET attempts = d.attempts + 1,
        next_attempt_at = now() + make_interval(secs => :lease),
        last_attempt_at = now()
    FROM claimed, events ev, webhook_endpoints e
    WHERE d.id = claimed.id AND ev.seq = d.event_seq AND e.id = d.endpoint_id
    RETURNING d.id, d.tenant_id, d.endpoint_id, d.event_id, d.attempts, ev.payload,
              e.url, e.secret, e.previous_secret, e.previous_secret_until
    """
).bindparams(
    sa.bindparam("skip", type_=ARRAY(sa.Uuid)),
    sa.bindparam("only", type_=ARRAY(sa.Uuid)),
    sa.bindparam("busy_ids", type_=ARRAY(sa.Uuid)),
    sa.bindparam("busy_counts", type_=ARRAY(sa.Integer)),
)


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    tenant_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    attempt: int
    payload: str
    url: str
    secret: str  # encrypted
    previous_secret: str | None  # encrypted, still valid
    claimed_at: datetime


async def claim_due(
    uow: UnitOfWork,
    *,
    limit: int,
    per_endpoint: int,
    busy: dict[uuid.UUID, int],
    lease_seconds: float,
    skip: Sequence[uuid.UUID] = (),
    only: Sequence[uuid.UUID] | None = None,
) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries, at most ``per_endpoint`` minus what is already in
    flight (``busy``) per endpoint; none for the endpoints in ``skip``, and, given ``only``, none
    but for those."""
    full = [e for e, n in busy.items() if n >= per_endpoint]
    partial = [(e, n) for e, n in busy.items() if 0 < n < per_endpoint]
    rows = await uow.session.execute(
        _CLAIM,
        {
            "skip": [*full, *skip],
            "only": None if only is None else list(only),
            "busy_ids": [e for e, _ in partial],
            "busy_counts": [n for _, n in partial],
            "per_endpoint": per_endpoint,
            "n": limit,
            "lease": lease_seconds,
        },
    )
    now = datetime.now(UTC)
    claimed = [
        Claimed(
            id=r.id,
            tenant_id=r.tenant_id,
            endpoint_id=r.endpoint_id,
            event_id=r.event_id,
            attempt=r.attempts,
            payload=r.payload,
            url=r.url,
            secret=r.secret,
            previous_secret=r.previous_secret
            if r.previous_secret and r.previous_secret_until and r.previous_secret_until > now
            else None,
            claimed_at=now,
        )
        for r in rows
    ]
    await uow.commit()
    return claimed


@dataclass(frozen=True)
class AttemptResult:
    started_at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None
    excerpt: str | None


_SUCCEEDED = sa.text(
    """
    UPDATE deliveries d
    SET status = 'succeeded', next_attempt_at = NULL, completed_at = now(),
        last_status_code = done.code, last_error = NULL
    FROM unnest(CAST(:ids AS uuid[]), CAST(:attempts AS int[]), CAST(:codes AS int[])) AS done(id, attempt, code)
    WHERE d.id = done.id AND d.attempts = done.attempt AND d.status = 'pending'
    """
).bindparams(
    sa.bindparam("ids", type_=ARRAY(sa.Uuid)),
    sa.bindparam("attempts", type_=ARRAY(sa.Integer)),
    sa.bindparam("codes", type_=ARRAY(sa.Integer)),
)
# A success ends a failure streak; last_success_at is refreshed at most once a minute, so a busy
# endpoint's row is not rewritten for every delivery.
_ENDPOINT_OK = sa.text(
    """
    UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL, last_success_at = now()
    WHERE id = ANY(:ids)
      AND (consecutive_failures <> 0 OR last_success_at IS NULL OR last_success_at < now() - interval '1 minute')
    """
).bindparams(sa.bindparam("ids", type_=ARRAY(sa.Uuid)))


async def record_attempts(
    uow: UnitOfWork,
    done: list[tuple[Claimed, AttemptResult]],
    *,
    schedule: list[float],
    jitter: float,
    policy: DisablePolicy,
    rand: Any = random.random,
) -> None:
    """Log a batch of attempts and move their deliveries and endpoints on, in one transaction
    (commits). Successes — the common case — are two statements for the whole batch."""
    if not done:
        return
    await uow.session.execute(
        sa.insert(delivery_attempts),
        [
            {
                "delivery_id": c.id,
                "tenant_id": c.tenant_id,
                "attempt": c.attempt,
                "started_at": r.started_at,
                "status_code": r.status_code,
                "latency_ms": r.latency_ms,
                "error": r.error,
                "response_excerpt": r.excerpt,
            }
            for c, r in done
        ],
    )
    ok = [(c, r) for c, r in done if classify(r.status_code) is Outcome.SUCCEEDED]
    if ok:
        DELIVERY_ATTEMPTS.labels(Outcome.SUCCEEDED.value).inc(len(ok))
        await uow.session.execute(
            _SUCCEEDED,
            {
                "ids": [c.id for c, _ in ok],
                "attempts": [c.attempt for c, _ in ok],
                "codes": [r.status_code for _, r in ok],
            },
        )
        await uow.session.execute(_ENDPOINT_OK, {"ids": sorted({c.endpoint_id for c, _ in ok})})
    # Failures update their endpoint's row one by one, in endpoint order, so that two workers
    # recording at once mostly lock rows in the same order: a deadlock rolls back the whole batch,
    # successes included (the dispatcher then writes the batch's attempts one by one).
    failed = sorted(
        ((c, r) for c, r in done if classify(r.status_code) is not Outcome.SUCCEEDED),
        key=lambda item: (item[0].endpoint_id, item[0].id),
    )
    for claimed, result in failed:
        await _record_failure(uow, claimed, result, schedule, jitter, policy, rand)
    await uow.commit()


async def record_attempt(
    uow: UnitOfWork,
    claimed: Claimed,
    result: AttemptResult,
    *,
    schedule: list[float],
    jitter: float,
    policy: DisablePolicy,
    rand: Any = random.random,
) -> None:
    await record_attempts(uow, [(claimed, result)], schedule=schedule, jitter=jitter, policy=policy, rand=rand)


async def _record_failure(
    uow: UnitOfWork,
    claimed: Claimed,
    result: AttemptResult,
    schedule: list[float],
    jitter: float,
    policy: DisablePolicy,
    rand: Any,
) -> None:
    outcome = classify(result.status_code)
    DELIVERY_ATTEMPTS.labels(outcome.value if result.status_code is not None else "no_answer").inc()
    values: dict[str, Any] = {
        "last_status_code": result.status_code,
        "last_error": result.error or f"HTTP {result.status_code}",
    }
    delay = None if outcome is Outcome.GONE else next_delay(claimed.attempt, schedule, jitter, rand)
    if delay is None:
        values.update(status="failed", next_attempt_at=None, completed_at=sa.func.now())
    else:
        values.update(next_attempt_at=sa.func.now() + timedelta(seconds=delay))
    # Only the claim that is still current may move the delivery (a lease that ran out was
    # claimed again; a disabled endpoint's deliveries were cancelled).
    d = deliveries.c
    await uow.session.execute(
        sa.update(deliveries)
        .where(d.id == claimed.id, d.attempts == claimed.attempt, d.status == "pending")
        .values(**values)
    )
    ep = webhook_endpoints.c
    streak = (
        await uow.session.execute(
            sa.update(webhook_endpoints)
            .where(ep.id == claimed.endpoint_id)
            .values(
                consecutive_failures=ep.consecutive_failures + 1,
                failing_since=sa.func.coalesce(ep.failing_since, sa.func.now()),
                last_failure_at=sa.func.now(),
            )
            .returning(ep.consecutive_failures, ep.failing_since, ep.enabled)
        )
    ).first()
    reason = None
    if outcome is Outcome.GONE:
        reason = GONE_REASON
    elif streak is not None and streak.enabled:
        reason = policy.reason(streak.consecutive_failures, streak.failing_since, datetime.now(UTC))
    if reason and await disable_endpoint(uow, claimed.tenant_id, claimed.endpoint_id, reason):
        ENDPOINTS_DISABLED.labels("gone" if outcome is Outcome.GONE else "failing").inc()
        # The operator's signal: an error log line with tenant and endpoint, the metric, and the
        # endpoint's status and reason in the API.
        log.error(
            "notify.endpoint_disabled",
            tenant_id=str(claimed.tenant_id),
            endpoint_id=str(claimed.endpoint_id),
            url=claimed.url,
            reason=reason,
        )


# ---------------------------------------------------------------- the delivery log


async def list_deliveries(
    uow: UnitOfWork,
    tenant_id: uuid.UUID,
    *,
    endpoint_id: uuid.UUID | None,
    event_id: uuid.UUID | None,
    status: str | None,
    before: int | None,
    limit: int,
    event_type: str | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Newest first; returns the page and the ``before`` value of the next page (or None).
    ``event_type`` is a type (``mandate.signed``) or a family (``mandate.*``)."""
    d = deliveries.c
    query = sa.select(
        d.seq,
        d.id,
        d.endpoint_id,
        d.event_id,
        d.event_type,
        d.status,
        d.manual,
        d.attempts,
        d.next_attempt_at,
        d.last_attempt_at,
        d.last_status_code,
        d.last_error,
        d.completed_at,
        d.created_at,
    ).where(d.tenant_id == tenant_id)
    if endpoint_id is not None:
        query = query.where(d.endpoint_id == endpoint_id)
    if event_id is not None:
        query = query.where(d.event_id == event_id)
    if status is not None:
        query = query.where(d.status == status)
    if event_type is not None and event_type.endswith(".*"):
        query = query.where(d.event_type.startswith(event_type[:-1], autoescape=True))
    elif event_type is not None:
        query = query.where(d.event_type == event_type)
    if before is not None:
        query = query.where(d.seq < before)
    rows = (await uow.session.execute(query.order_by(d.seq.desc()).limit(limit + 1))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    attempts: dict[uuid.UUID, list[dict[str, Any]]] = {r.id: [] for r in rows}
    if rows:
        a = delivery_attempts.c
        found = await uow.session.execute(
            sa.select(a.delivery_id, a.attempt, a.started_at, a.status_code, a.latency_ms, a.error, a.response_excerpt)
            .where(a.delivery_id.in_(list(attempts)), a.tenant_id == tenant_id)
            .order_by(a.seq)
        )
        for at in found:
            item = dict(at._mapping)
            attempts[item.pop("delivery_id")].append(item)
    page = []
    for r in rows:
        item = dict(r._mapping)
        item.pop("seq")
        item["attempt_log"] = attempts[r.id]
        page.append(item)
    return page, (rows[-1].seq if more else None)


async def get_delivery(uow: UnitOfWork, tenant_id: uuid.UUID, delivery_id: uuid.UUID) -> dict[str, Any]:
    seq = (
        await uow.session.execute(
            sa.select(deliveries.c.seq).where(deliveries.c.tenant_id == tenant_id, deliveries.c.id == delivery_id)
        )
    ).scalar_one_or_none()
    if seq is None:
        raise Problem(404, "delivery_not_found", f"no delivery {delivery_id}")
    page, _ = await list_deliveries(
        uow, tenant_id, endpoint_id=None, event_id=None, status=None, before=seq + 1, limit=1
    )
    return page[0]


# ---------------------------------------------------------------- manual redelivery

MAX_REDELIVER = 10_000


async def redeliver(
    uow: UnitOfWork,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    event_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
) -> int:
    """Queue the event again (whatever the subscription says: the ERP asked for it), or every
    subscribed event received in ``[since, until)``. Returns how many deliveries were queued."""
    endpoint = await get_endpoint(uow, tenant_id, endpoint_id)
    if not endpoint["enabled"]:
        raise Problem(409, "endpoint_disabled", "enable the endpoint before redelivering to it")
    query = sa.select(events.c.seq, events.c.event_id, events.c.type).where(events.c.tenant_id == tenant_id)
    if event_id is not None:
        query = query.where(events.c.event_id == event_id)
    else:
        if since is None:
            raise Problem(422, "redeliver_what", "give event_id, or since (and optionally until)")
        query = query.where(events.c.received_at >= since)
        if until is not None:
            query = query.where(events.c.received_at < until)
    rows = (await uow.session.execute(query.order_by(events.c.seq).limit(MAX_REDELIVER + 1))).all()
    if event_id is not None and not rows:
        raise Problem(404, "event_not_found", f"no event {event_id} in the feed (it may be past retention)")
    if len(rows) > MAX_REDELIVER:
        raise Problem(422, "redeliver_too_many", f"more than {MAX_REDELIVER} events in that range; narrow it")
    if event_id is None:
        # test samples (koppel.test) are no business events: a replay by time leaves them out
        rows = [r for r in rows if subscribed(endpoint["event_types"], r.type) and r.type != "koppel.test"]
    if rows:
        await uow.session.execute(
            sa.insert(deliveries).values(
                [
                    {
                        "id": uuid.uuid4(),
                        "tenant_id": tenant_id,
                        "endpoint_id": endpoint_id,
                        "event_seq": r.seq,
                        "event_id": r.event_id,
                        "event_type": r.type,
                        "status": "pending",
                        "manual": True,
                        "next_attempt_at": sa.func.now(),
                    }
                    for r in rows
                ]
            )
        )
        await wake_dispatchers(uow)
    await uow.commit()
    return len(rows)
