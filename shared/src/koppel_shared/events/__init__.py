"""Events: the envelope every message travels in, and the registry of typed, versioned payloads."""

# Importing the schema modules registers every event type of Koppel.
from koppel_shared.events import booking, collection, commands, mandate, system, twikey  # noqa: F401
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
