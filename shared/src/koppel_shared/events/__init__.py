"""Events: the envelope every message travels in, and the registry of typed, versioned payloads."""

from koppel_shared.events import system as _system  # noqa: F401  (registers system.ping)
from koppel_shared.events.envelope import Envelope, new_event
from koppel_shared.events.registry import (
    EventData,
    UnknownEventType,
    UnsupportedEventVersion,
    decode_data,
    event_type,
    registered_types,
)

__all__ = [
    "Envelope",
    "EventData",
    "UnknownEventType",
    "UnsupportedEventVersion",
    "decode_data",
    "event_type",
    "new_event",
    "registered_types",
]
