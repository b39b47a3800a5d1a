import uuid

import pytest

from koppel_shared.events import Envelope, EventData, decode_data, event_type, new_event
from koppel_shared.events.registry import UnknownEventType, UnsupportedEventVersion, upcaster
from koppel_shared.events.system import Ping


@event_type("test.widget_renamed", version=2)
class WidgetRenamed(EventData):
    widget_id: str
    new_name: str


@upcaster("test.widget_renamed", from_version=1)
def _v1_to_v2(data: dict) -> dict:
    return {"widget_id": data["id"], "new_name": data["name"]}


def test_envelope_round_trips_through_json() -> None:
    tenant = uuid.uuid4()
    env = new_event(Ping(sender="x", note="hi"), tenant_id=tenant, correlation_id="c-1")
    back = Envelope.from_json(env.to_json())
    assert back == env
    assert back.type == "system.ping" and back.version == 1 and back.tenant_id == tenant


def test_unknown_fields_are_ignored_by_consumers() -> None:
    data = decode_data("system.ping", 1, {"sender": "a", "brand_new_field": 42})
    assert isinstance(data, Ping) and data.sender == "a"


def test_old_version_is_upcast_to_the_current_model() -> None:
    data = decode_data("test.widget_renamed", 1, {"id": "w1", "name": "Blue"})
    assert data == WidgetRenamed(widget_id="w1", new_name="Blue")


def test_newer_version_than_known_is_refused() -> None:
    with pytest.raises(UnsupportedEventVersion):
        decode_data("test.widget_renamed", 3, {})


def test_unknown_type_is_refused() -> None:
    with pytest.raises(UnknownEventType):
        decode_data("nobody.knows", 1, {})


def test_caused_event_keeps_tenant_and_correlation() -> None:
    first = new_event(Ping(sender="a"), tenant_id=uuid.uuid4(), correlation_id="corr")
    second = first.caused(Ping(sender="b"))
    assert second.tenant_id == first.tenant_id
    assert second.correlation_id == "corr"
    assert second.causation_id == str(first.id)
