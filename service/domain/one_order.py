"""The ONE Order derivation rules: item and order statuses follow from the services' delivery statuses."""

from contracts.statuses import OneOrderStatus, OrderItemStatus, ServiceStatus
from service.domain.order import Order, OrderItem

_WITHDRAWN = (ServiceStatus.CANCELLED, ServiceStatus.TRANSFERRED)


def item_status(item: OrderItem) -> OrderItemStatus:
    """ACTIVE while a service holds value; CLOSED if one was delivered and none holds value; else CANCELLED"""
    if any(service.delivery_status.holds_value for service in item.services):
        return OrderItemStatus.ACTIVE
    if any(service.status not in _WITHDRAWN for service in item.services):
        # Nothing holds value and some service was not withdrawn: it was consumed (DELIVERED).
        return OrderItemStatus.CLOSED
    return OrderItemStatus.CANCELLED


def order_status(order: Order) -> OneOrderStatus:
    """OPENED while any service holds value, CLOSED when all items are CLOSED or CANCELLED."""
    holds_value = any(s.delivery_status.holds_value for item in order.items for s in item.services)
    return OneOrderStatus.OPENED if holds_value else OneOrderStatus.CLOSED


def visible_items(order: Order) -> list[OrderItem]:
    """The retrieve rule: ACTIVE and CLOSED items; CANCELLED ones only if all were cancelled at once."""
    statuses = [item_status(item) for item in order.items]
    if all(status is OrderItemStatus.CANCELLED for status in statuses):
        if len({item.cancelled_at_sequence for item in order.items}) == 1:
            return list(order.items)
        return []
    return [
        item
        for item, status in zip(order.items, statuses, strict=True)
        if status is not OrderItemStatus.CANCELLED
    ]
