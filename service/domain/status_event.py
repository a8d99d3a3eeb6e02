"""The status events the domain decides, as msgspec structs that encode to the contract's JSON.

The contract of `order_status_changed` is `contracts.events.OrderStatusChanged`, a pydantic model that
readers validate. The service only writes these events, two per order on the happy path: building the
model with its ONE Order view (four validated models) and serialising it cost about 17 µs each, against
about 3 µs here. These structs have the contract's fields, in its order, with its types; the bytes they
encode are the ones `OrderStatusChanged(...).model_dump_json()` gives (`tests/unit/test_status_events.py`
compares both over random lifecycles, and fails if the contract gains a field these lack).
"""

from datetime import datetime
from typing import Literal

import msgspec

from contracts.events import OrderView
from contracts.statuses import (
    DeliveryStatus,
    OneOrderStatus,
    OrderItemStatus,
    OrderStatus,
    OrderType,
    ProductType,
    ServiceStatus,
)
from service.domain.one_order import item_status, order_status, visible_items
from service.domain.order import Order


class ServiceViewData(msgspec.Struct, kw_only=True):
    """`contracts.events.ServiceView`."""

    service_id: str
    passenger_id: str
    passenger_name: str
    status: ServiceStatus
    delivery_status: DeliveryStatus


class OrderItemViewData(msgspec.Struct, kw_only=True):
    """`contracts.events.OrderItemView`."""

    order_item_id: str
    resource_id: str
    product_type: ProductType
    service_date: str | None
    status: OrderItemStatus
    booking_reference: str | None = None
    services: list[ServiceViewData]


class OrderViewData(msgspec.Struct, kw_only=True):
    """`contracts.events.OrderView`."""

    status: OneOrderStatus
    items: list[OrderItemViewData]


class StatusEvent(msgspec.Struct, kw_only=True):
    """`contracts.events.OrderStatusChanged`, as the service publishes it."""

    type: Literal["order_status_changed"] = "order_status_changed"
    event_id: str
    order_id: str
    client_id: str
    order_type: OrderType
    sequence: int
    status: OrderStatus
    status_name: str
    previous_status: OrderStatus | None
    reason: str | None
    occurred_at: datetime
    order: OrderViewData

    def to_json(self) -> bytes:
        """The event as published."""
        return _ENCODER.encode(self)


_ENCODER = msgspec.json.Encoder()


def event_view(order: Order) -> OrderViewData:
    """The ONE Order view of an order (the rules of `service.domain.one_order`), as an event carries it;
    the API serves the same view as the contract's model (`order_view`)."""
    return OrderViewData(
        status=order_status(order),
        items=[
            OrderItemViewData(
                order_item_id=item.order_item_id,
                resource_id=item.resource_id,
                product_type=item.product_type,
                service_date=item.service_date,
                status=item_status(item),
                booking_reference=item.booking_reference,
                services=[
                    ServiceViewData(
                        service_id=s.service_id,
                        passenger_id=s.passenger_id,
                        passenger_name=s.passenger_name,
                        status=s.status,
                        delivery_status=s.delivery_status,
                    )
                    for s in item.services
                ],
            )
            for item in visible_items(order)
        ],
    )


def order_view(order: Order) -> OrderView:
    """The ONE Order view of an order as the API serves it: the one its events carry, as the contract's
    model."""
    return OrderView.model_validate(msgspec.to_builtins(event_view(order)))
