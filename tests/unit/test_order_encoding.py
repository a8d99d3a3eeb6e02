"""The stored order's JSON is the one the pydantic models wrote before the order became a msgspec struct:
orders stored by either version read back alike, and a rollback reads what this version stored."""

from datetime import datetime

import msgspec
import pytest
from pydantic import BaseModel, ConfigDict

from contracts.statuses import DeliveryStatus, OrderStatus, OrderType, ProductType, ServiceStatus
from service.domain.decide import Context, decide
from service.domain.local_effects import EntitlementCheck
from service.domain.order import Order, ReservationState
from testkit.factories import walk_in
from tests.unit.test_change_decisions import requested
from tests.unit.test_lifecycle_decisions import NOW, POLICY, confirmed_order, stored


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PydanticService(_Model):
    service_id: str
    passenger_id: str
    passenger_name: str
    status: ServiceStatus
    delivery_status: DeliveryStatus
    suspended_from: DeliveryStatus | None = None


class PydanticItem(_Model):
    order_item_id: str
    resource_id: str
    product_type: ProductType
    service_date: str | None
    reservation_id: str | None
    reservation: ReservationState
    services: list[PydanticService]
    cancelled_at_sequence: int | None = None
    booking_reference: str | None = None


class PydanticChange(_Model):
    from_item_id: str
    item: PydanticItem
    deadline: datetime


class PydanticOrder(_Model):
    """`service.domain.order.Order` as it was, a pydantic model."""

    order_id: str
    client_id: str
    order_type: OrderType
    status: OrderStatus
    sequence: int
    created_at: datetime
    updated_at: datetime
    items: list[PydanticItem]
    reason: str | None = None
    credential: str | None = None
    entitlement_consumption_id: str | None = None
    changes: list[PydanticChange] = []


def _orders() -> list[Order]:
    confirmed = confirmed_order("A", passengers=2)
    changing = requested(confirmed)
    walked_in = stored(
        decide(None, walk_in("LOUNGE-1"), Context(NOW, POLICY, "in-1", EntitlementCheck.CONSUMED))
    )
    return [confirmed, changing, walked_in]


@pytest.mark.parametrize("order", _orders(), ids=["confirmed", "change-pending", "walk-in"])
def test_the_stored_json_is_the_pydantic_models_json_byte_for_byte(order: Order) -> None:
    as_model = PydanticOrder.model_validate_json(order.to_json())

    assert as_model.model_dump_json().encode() == order.to_json()
    assert Order.from_json(as_model.model_dump_json().encode()) == order


def test_a_change_pending_order_carries_its_change() -> None:
    """What the byte comparison covers: the nested change, with its deadline."""
    [_, changing, _] = _orders()
    assert changing.changes and changing.changes[0].item.reservation is ReservationState.REQUESTED


def test_an_unknown_field_is_refused_as_the_models_did() -> None:
    raw = confirmed_order("A").to_json()
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        Order.from_json(raw[:-1] + b',"surprise":1}')


def test_a_clone_is_deep() -> None:
    order = confirmed_order("A")
    copy = order.clone()
    copy.items[0].services[0].status = ServiceStatus.CANCELLED

    assert copy == copy.clone() and copy != order
    assert order.items[0].services[0].status is ServiceStatus.CONFIRMED
