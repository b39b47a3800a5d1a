"""What the settings form offers and checks against Twinfield: the offices the tenant's consent
reaches, an office's general ledger accounts, and whether a chosen office and accounts exist.

Each look-up is a ProcessXml ``<list>`` (1 credit, from the shared credit budget). Answers are kept
per tenant and office for ``chart_cache_seconds`` so that a form that lists the accounts and then
saves does not read them twice; a saved connection forgets the tenant's entries.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from bookkeeping_svc.adapters.orm import connections
from bookkeeping_svc.adapters.twinfield import catalogue
from bookkeeping_svc.adapters.twinfield.errors import ConsentLost, OAuthFailed, TwinfieldError
from bookkeeping_svc.service_layer.gateway import Gateway, NotConnected
from bookkeeping_svc.settings import Settings
from koppel_shared.db import UnitOfWork
from koppel_shared.service import Runtime
from koppel_shared.web.errors import Problem

EXTRAS_KEY = "twinfield_chart"


@dataclass(frozen=True)
class Account:
    code: str
    name: str
    kind: str  # balance | profit_and_loss

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "name": self.name, "kind": self.kind}


@dataclass
class ChartCache:
    ttl: float
    _entries: dict[tuple[uuid.UUID, str], tuple[float, Any]] = field(default_factory=dict)

    def get(self, tenant_id: uuid.UUID, key: str) -> Any | None:
        found = self._entries.get((tenant_id, key))
        if found is None or time.monotonic() > found[0]:
            return None
        return found[1]

    def put(self, tenant_id: uuid.UUID, key: str, value: Any) -> None:
        self._entries[(tenant_id, key)] = (time.monotonic() + self.ttl, value)

    def forget(self, tenant_id: uuid.UUID) -> None:
        for key in [k for k in self._entries if k[0] == tenant_id]:
            del self._entries[key]


def chart_cache(runtime: Runtime) -> ChartCache:
    existing = runtime.extras.get(EXTRAS_KEY)
    if isinstance(existing, ChartCache):
        return existing
    settings = runtime.settings
    assert isinstance(settings, Settings)
    made = ChartCache(ttl=settings.chart_cache_seconds)
    runtime.extras[EXTRAS_KEY] = made
    return made


async def connection_state(uow: UnitOfWork, tenant_id: uuid.UUID) -> str:
    found = (
        await uow.session.execute(sa.select(connections.c.status).where(connections.c.tenant_id == tenant_id))
    ).scalar_one_or_none()
    return str(found or "not_connected")


def _require_connected(state: str) -> None:
    if state == "consent_lost":
        detail = "Twinfield no longer accepts this connection; reconnect (POST /v1/twinfield/connect)"
        raise Problem(409, "twinfield_consent_lost", detail)
    if state != "connected":
        raise Problem(409, "twinfield_not_connected", "connect Twinfield first (POST /v1/twinfield/connect)")


def _unreachable(exc: TwinfieldError) -> Problem:
    if isinstance(exc, ConsentLost):
        return Problem(409, "twinfield_consent_lost", f"Twinfield refused the refresh token: {exc}; reconnect")
    if isinstance(exc, NotConnected):
        return Problem(409, "twinfield_not_connected", str(exc))
    if isinstance(exc, OAuthFailed):
        return Problem(502, "twinfield_refused", f"Twinfield's login refused: {exc}")
    return Problem(503, "twinfield_unavailable", f"Twinfield could not be asked: {exc}; try again later")


async def offices(gw: Gateway, cache: ChartCache, uow: UnitOfWork, tenant_id: uuid.UUID) -> list[dict[str, str]]:
    """The offices (administrations) the tenant's consent reaches, by code."""
    _require_connected(await connection_state(uow, tenant_id))
    cached = cache.get(tenant_id, "")
    if cached is not None:
        return list(cached)
    try:
        access = await gw.access(tenant_id, office_required=False)
        _, root = await gw.call(access, catalogue.list_offices(), company="")
        found = [{"code": e.code, "name": e.name} for e in catalogue.parse_offices(root)]
    except catalogue.ListRefused as exc:
        raise Problem(502, "twinfield_refused", f"Twinfield refused the list of offices: {exc}") from exc
    except TwinfieldError as exc:
        raise _unreachable(exc) from exc
    found.sort(key=lambda o: o["code"])
    cache.put(tenant_id, "", found)
    return found


async def accounts(gw: Gateway, cache: ChartCache, uow: UnitOfWork, tenant_id: uuid.UUID, office: str) -> list[Account]:
    """The office's own general ledger accounts: balance sheet (BAS) and profit and loss (PNL)."""
    _require_connected(await connection_state(uow, tenant_id))
    cached = cache.get(tenant_id, office)
    if cached is not None:
        return list(cached)
    known = {o["code"] for o in await offices(gw, cache, uow, tenant_id)}
    if office not in known:
        detail = f"office {office} is not one this Twinfield connection reaches"
        raise Problem(404, "twinfield_office_not_found", detail)
    found: list[Account] = []
    try:
        access = await gw.access(tenant_id, office_required=False)
        for dimtype, kind in catalogue.LEDGER_TYPES.items():
            access, root = await gw.call(access, catalogue.list_dimensions(office, dimtype), company=office)
            found += [Account(e.code, e.name, kind) for e in catalogue.parse_dimensions(root, dimtype)]
    except catalogue.ListRefused as exc:
        raise Problem(502, "twinfield_refused", f"Twinfield refused the accounts of office {office}: {exc}") from exc
    except TwinfieldError as exc:
        raise _unreachable(exc) from exc
    found.sort(key=lambda a: a.code)
    cache.put(tenant_id, office, found)
    return found


def _account_problem(field_name: str, code: str, office: str, chart: dict[str, Account]) -> dict[str, str] | None:
    account = chart.get(code)
    if account is None:
        return {
            "field": field_name,
            "rule": "twinfield_account_exists",
            "message": f"office {office} has no general ledger account {code}",
        }
    if account.kind != "balance":
        return {
            "field": field_name,
            "rule": "twinfield_balance_account",
            "message": f"{code} ({account.name}) is a profit and loss account; a balance sheet account is needed",
        }
    return None


async def check(
    gw: Gateway,
    cache: ChartCache,
    uow: UnitOfWork,
    tenant_id: uuid.UUID,
    office: str,
    debtor_account: str,
    cross_accounts: dict[str, str],
) -> None:
    """Refuse (422, ``errors: [{field, rule, message}]``) an office the connection does not reach
    or an account its chart does not have. The debtor account and the cross-accounts carry
    receivables and money on its way: each must be a balance sheet account. Before consent (or
    after it was lost) nothing can be asked, and the settings are taken as they are."""
    if await connection_state(uow, tenant_id) != "connected":
        return
    cache.forget(tenant_id)  # decide on what Twinfield says now, not on a minute-old answer
    problems: list[dict[str, str]] = []
    if office not in {o["code"] for o in await offices(gw, cache, uow, tenant_id)}:
        problems.append(
            {
                "field": "office",
                "rule": "twinfield_office_exists",
                "message": f"office {office} is not one this Twinfield connection reaches",
            }
        )
    else:
        chart = {a.code: a for a in await accounts(gw, cache, uow, tenant_id, office)}
        wanted = [("debtor_account", debtor_account)] + [
            (f"cross_accounts.{method}", code) for method, code in sorted(cross_accounts.items())
        ]
        problems += [p for name, code in wanted if (p := _account_problem(name, code, office, chart))]
    if problems:
        raise Problem(
            422,
            "validation_error",
            "; ".join(f"{p['field']}: {p['message']}" for p in problems),
            "Invalid request",
            errors=problems,
        )
