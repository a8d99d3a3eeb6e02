"""Events are read tolerantly (a newer service may add fields within v1); commands stay strict."""

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contracts.commands import CreatePrebooking, order_command_adapter
from contracts.events import (
    CommandRejected,
    DeadLetter,
    OrderItemView,
    OrderStatusChanged,
    OrderView,
    ServiceView,
)
from contracts.statuses import (
    DeliveryStatus,
    OneOrderStatus,
    OrderItemStatus,
    OrderStatus,
    OrderType,
    ProductType,
    ServiceStatus,
)


def _event() -> dict[str, Any]:
    service = ServiceView(
        service_id="ITEM-1-PAX-1",
        passenger_id="PAX-1",
        passenger_name="Ada",
        status=ServiceStatus.CONFIRMED,
        delivery_status=DeliveryStatus.READY_TO_DELIVER,
    )
    item = OrderItemView(
        order_item_id="ITEM-1",
        resource_id="LHR-FT",
        product_type=ProductType.FAST_TRACK,
        service_date="2026-12-24",
        status=OrderItemStatus.ACTIVE,
        services=[service],
    )
    event = OrderStatusChanged(
        event_id="e-1",
        order_id="ORD-1",
        client_id="acme",
        order_type=OrderType.PREBOOKING,
        sequence=2,
        status=OrderStatus.CONFIRMED,
        status_name="Confirmed",
        previous_status=OrderStatus.PENDING,
        reason=None,
        occurred_at=datetime(2026, 12, 20, tzinfo=UTC),
        order=OrderView(status=OneOrderStatus.OPENED, items=[item]),
    )
    parsed: dict[str, Any] = json.loads(event.model_dump_json())
    return parsed


def test_an_event_with_fields_added_at_any_depth_is_read_without_them() -> None:
    """What an older consumer (the relay among them) does with a newer service's event: uses what it knows."""
    event = _event()
    event["added_later"] = {"anything": [1, 2]}
    event["order"]["added_later"] = 1
    event["order"]["items"][0]["added_later"] = "x"
    event["order"]["items"][0]["services"][0]["added_later"] = True
    parsed = OrderStatusChanged.model_validate_json(json.dumps(event))
    assert parsed.order.items[0].services[0].service_id == "ITEM-1-PAX-1"
    assert "added_later" not in parsed.model_dump_json()


def test_an_event_from_before_the_booking_reference_is_read_as_having_none() -> None:
    """New event fields are optional: an event published without one parses, the field null."""
    event = _event()
    del event["order"]["items"][0]["booking_reference"]
    assert OrderStatusChanged.model_validate_json(json.dumps(event)).order.items[0].booking_reference is None


def test_a_command_with_an_unknown_field_is_still_refused() -> None:
    """A misspelt `order_item_ids` ignored would turn a partial cancellation into a whole one."""
    cancel = {"type": "cancel_order", "command_id": "c", "client_id": "a", "order_id": "o"}
    with pytest.raises(ValidationError, match="Extra inputs"):
        order_command_adapter.validate_json(json.dumps({**cancel, "order_item_id": ["ITEM-1"]}))


@pytest.mark.parametrize("model", [OrderStatusChanged, CommandRejected, DeadLetter])
def test_event_schemas_allow_additional_properties_at_every_level(model: type[BaseModel]) -> None:
    """What the models do is what the published schemas say, nested views included."""
    schema = model.model_json_schema()
    objects = [schema, *(d for d in schema.get("$defs", {}).values() if "properties" in d)]
    assert all(o["additionalProperties"] is True for o in objects)


def test_command_schemas_still_forbid_them() -> None:
    """Commands stay strict, and their schemas say so."""
    schema = order_command_adapter.json_schema()
    assert all(d["additionalProperties"] is False for d in schema["$defs"].values() if "properties" in d)
    assert CreatePrebooking.model_json_schema()["additionalProperties"] is False
