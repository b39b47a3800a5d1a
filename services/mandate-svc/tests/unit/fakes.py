"""In-memory stand-ins for mandate-svc's repositories and sync-svc's invite API, for unit tests
of the use cases (no PostgreSQL, no broker, no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from koppel_shared.events import Envelope
from koppel_shared.testing.fakes import FakeUnitOfWork
from mandate_svc.adapters.repository import KeyClaim, SqlMandateRepository
from mandate_svc.adapters.sync_client import InviteRequest, InviteResult
from mandate_svc.adapters.unclaimed import OPEN, SqlUnclaimedRepository, Unclaimed
from mandate_svc.domain.model import FeedMessage, Mandate, Status


@dataclass
class FakeMandates:
    """``MandateRepository`` over dicts, keyed the way the tables' unique indexes are."""

    by_id: dict[tuple[str, str], Mandate] = field(default_factory=dict)
    history: list[tuple[str, str, str]] = field(default_factory=list)  # (tenant, mandate id, event type)
    keys: dict[tuple[str, str], KeyClaim] = field(default_factory=dict)

    async def get(self, tenant_id: str, mandate_id: str, lock: bool = False) -> Mandate | None:
        return self.by_id.get((tenant_id, mandate_id))

    async def get_by_number(self, tenant_id: str, number: str, lock: bool = False) -> Mandate | None:
        found = [m for (t, _), m in self.by_id.items() if t == tenant_id and m.mandate_number == number]
        return found[0] if found else None

    async def add(self, m: Mandate) -> None:
        if (m.tenant_id, m.id) in self.by_id:
            raise AssertionError(f"mandate {m.id} added twice (the primary key would refuse it)")
        self.by_id[(m.tenant_id, m.id)] = m

    async def add_if_number_unseen(self, m: Mandate) -> bool:
        if m.mandate_number and await self.get_by_number(m.tenant_id, m.mandate_number):
            return False
        await self.add(m)
        return True

    async def save(self, m: Mandate) -> None:
        if (m.tenant_id, m.id) not in self.by_id:
            raise AssertionError(f"mandate {m.id} saved before it was added")
        self.by_id[(m.tenant_id, m.id)] = m

    async def remove(self, tenant_id: str, mandate_id: str) -> None:
        self.by_id.pop((tenant_id, mandate_id), None)
        for key, claim in list(self.keys.items()):
            if key[0] == tenant_id and claim.mandate_id == mandate_id:
                del self.keys[key]

    async def for_customer(self, tenant_id: str, customer_number: str) -> list[Mandate]:
        found = [m for (t, _), m in self.by_id.items() if t == tenant_id and m.customer_number == customer_number]
        return sorted(found, key=lambda m: (m.created_at, m.id), reverse=True)

    async def record_history(self, tenant_id: str, mandate_id: str, event: Envelope) -> None:
        self.history.append((tenant_id, mandate_id, event.type))

    async def claim_idempotency_key(
        self, tenant_id: str, key: str, request_hash: str, mandate_id: str, lease_until: datetime
    ) -> KeyClaim | None:
        if (tenant_id, key) in self.keys:
            return self.keys[(tenant_id, key)]
        self.keys[(tenant_id, key)] = KeyClaim(request_hash, mandate_id, lease_until)
        return None

    async def lease_idempotency_key(self, tenant_id: str, key: str, until: datetime | None) -> None:
        if (tenant_id, key) in self.keys:
            self.keys[(tenant_id, key)] = replace(self.keys[(tenant_id, key)], lease_until=until)

    async def claim_prepared_before(self, created_before: datetime, limit: int) -> list[Mandate]:
        due = [m for m in self.by_id.values() if m.status == Status.PREPARED and m.created_at < created_before]
        return sorted(due, key=lambda m: m.created_at)[:limit]


@dataclass
class FakeUnclaimed:
    """``UnclaimedRepository`` over a dict."""

    entries: dict[tuple[str, str], Unclaimed] = field(default_factory=dict)

    async def record(self, tenant_id: str, message: FeedMessage, now: datetime) -> None:
        entry = self.entries.get((tenant_id, message.mandate_number))
        if entry is None:
            entry = Unclaimed(tenant_id, message.mandate_number, OPEN, [], None, now, now, None)
        if message.twikey_event_id not in {m.twikey_event_id for m in entry.messages}:
            entry = replace(entry, messages=[*entry.messages, message], last_seen_at=now)
        self.entries[(tenant_id, message.mandate_number)] = entry

    async def get(self, tenant_id: str, number: str, lock: bool = False) -> Unclaimed | None:
        return self.entries.get((tenant_id, number))

    async def list_by_status(self, tenant_id: str, status: str, limit: int) -> list[Unclaimed]:
        return [e for (t, _), e in self.entries.items() if t == tenant_id and e.status == status][:limit]

    async def decide(
        self, tenant_id: str, number: str, status: str, now: datetime, mandate_id: str | None = None
    ) -> None:
        entry = self.entries[(tenant_id, number)]
        self.entries[(tenant_id, number)] = replace(entry, status=status, decided_at=now, mandate_id=mandate_id)


@dataclass
class FakeSync:
    """sync-svc's invite: answers with a sign URL, or raises what it was told to."""

    raises: Exception | None = None
    invites: list[InviteRequest] = field(default_factory=list)

    async def invite(self, tenant_id: str, request: InviteRequest) -> InviteResult:
        self.invites.append(request)
        if self.raises is not None:
            raise self.raises
        return InviteResult(request.mandate_number, f"https://twikey.example/sign/{request.mandate_number}")


def fake_uow() -> tuple[FakeUnitOfWork, FakeMandates, FakeUnclaimed]:
    mandates, unclaimed = FakeMandates(), FakeUnclaimed()
    uow = FakeUnitOfWork({SqlMandateRepository: mandates, SqlUnclaimedRepository: unclaimed})
    return uow, mandates, unclaimed
