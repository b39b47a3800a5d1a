"""Registry of event payload models, one per (type, version), with upcasters for old versions.

A consumer decodes ``envelope.data`` with :func:`decode_data`: an unknown type or a version newer
than the one this code knows is an error the consumer dead-letters with the reason; an older
version is upcast step by step to the current one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict


class EventData(BaseModel):
    """Base of every event payload. Unknown fields are ignored (tolerant reader)."""

    model_config = ConfigDict(extra="ignore")


class UnknownEventType(Exception):
    pass


class UnsupportedEventVersion(Exception):
    pass


T = TypeVar("T", bound=type[EventData])

_by_type: dict[str, tuple[int, type[EventData]]] = {}
_by_model: dict[type[EventData], tuple[str, int]] = {}
_upcasters: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


def event_type(name: str, version: int = 1) -> Callable[[T], T]:
    """Class decorator: ``@event_type("mandate.signed", version=2)``."""

    def register(model: T) -> T:
        known = _by_type.get(name)
        if known and known[1] is not model and known[1].__qualname__ != model.__qualname__:
            raise ValueError(f"event type {name!r} is already registered to {known[1].__qualname__}")
        _by_type[name] = (version, model)
        _by_model[model] = (name, version)
        return model

    return register


def upcaster(name: str, from_version: int) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]], Any]:
    """Register a function turning version ``from_version`` data into ``from_version + 1``."""

    def register(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        _upcasters[(name, from_version)] = fn
        return fn

    return register


def type_of(model: type[EventData]) -> tuple[str, int]:
    try:
        return _by_model[model]
    except KeyError:
        raise UnknownEventType(f"{model.__qualname__} is not a registered event model") from None


def registered_types() -> dict[str, int]:
    return {name: version for name, (version, _) in _by_type.items()}


def decode_data(type_name: str, version: int, data: dict[str, Any]) -> EventData:
    known = _by_type.get(type_name)
    if known is None:
        raise UnknownEventType(f"unknown event type {type_name!r}")
    current, model = known
    if version > current:
        raise UnsupportedEventVersion(f"{type_name} version {version} is newer than the supported version {current}")
    while version < current:
        step = _upcasters.get((type_name, version))
        if step is None:
            raise UnsupportedEventVersion(f"no upcaster for {type_name} from version {version}")
        data = step(data)
        version += 1
    return model.model_validate(data)
