"""The event envelope (DESIGN.md): id, type, version, tenant, time, correlation, causation, data.

Consumers ignore fields they do not know, so producers can add fields without breaking anyone.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from koppel_shared.events.registry import EventData, type_of


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int = 1
    tenant_id: uuid.UUID | None = None
    occurred_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str | None = None
    causation_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        return cls.model_validate_json(raw)

    def caused(self, data: EventData, *, id: uuid.UUID | None = None) -> Envelope:
        """A follow-up event: same tenant and correlation, caused by this one."""
        return new_event(
            data,
            tenant_id=self.tenant_id,
            correlation_id=self.correlation_id,
            causation_id=str(self.id),
            id=id,
        )


def new_event(
    data: EventData,
    *,
    tenant_id: uuid.UUID | str | None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    """Wrap typed data in an envelope. Pass ``id`` to make the event id deterministic
    (e.g. derived from an external event identity so that a replay yields the same id)."""
    name, version = type_of(type(data))
    # model_construct: every value is already typed here, and feed drains build thousands a second
    return Envelope.model_construct(
        id=id or uuid.uuid4(),
        type=name,
        version=version,
        tenant_id=uuid.UUID(str(tenant_id)) if tenant_id is not None else None,
        occurred_at=occurred_at or datetime.now(UTC),
        correlation_id=correlation_id or str(uuid.uuid4()),
        causation_id=causation_id,
        data=data.model_dump(mode="json"),
    )
