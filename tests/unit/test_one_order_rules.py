"""Property tests: the ONE Order derivation rules hold for every combination of service statuses."""

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from contracts.statuses import (
    DeliveryStatus,
    OneOrderStatus,
    OrderItemStatus,
    OrderStatus,
    OrderType,
    ProductType,
)
from contracts.statuses import ServiceStatus as SS
from service.domain.one_order import item_status, order_status, visible_items
from service.domain.order import Order, OrderItem, ReservationState, Service
from service.domain.status_event import order_view

# The seed's CLOSED rule (DELIVERED, REMOVED) and the statuses that end a service undelivered.
NO_VALUE = {
    DeliveryStatus.DELIVERED,
    DeliveryStatus.REMOVED,
    DeliveryStatus.UNABLE_TO_DELIVER,
    DeliveryStatus.NOT_CLAIMED,
    DeliveryStatus.EXPIRED,
    DeliveryStatus.FAILED_TO_DELIVER,
}

services = st.builds(
    Service,
    service_id=st.uuids().map(str),
    passenger_id=st.just("P"),
    passenger_name=st.just("N"),
    status=st.sampled_from(SS),
    delivery_status=st.sampled_from(DeliveryStatus),
)
items = st.builds(
    OrderItem,
    order_item_id=st.uuids().map(str),
    resource_id=st.just("R"),
    product_type=st.just(ProductType.LOUNGE),
    service_date=st.none(),
    reservation_id=st.none(),
    reservation=st.just(ReservationState.NOT_NEEDED),
    services=st.lists(services, min_size=1, max_size=4),
    cancelled_at_sequence=st.sampled_from([None, 1, 2]),
)
orders = st.builds(
    Order,
    order_id=st.just("O"),
    client_id=st.just("C"),
    order_type=st.just(OrderType.PREBOOKING),
    status=st.just(OrderStatus.CONFIRMED),
    sequence=st.just(1),
    created_at=st.just(datetime(2026, 1, 1, tzinfo=UTC)),
    updated_at=st.just(datetime(2026, 1, 1, tzinfo=UTC)),
    items=st.lists(items, min_size=1, max_size=4),
)


@given(items)
def test_item_status_follows_its_services(item: OrderItem) -> None:
    """ACTIVE iff a service holds value; CLOSED needs a delivered service; CANCELLED needs all withdrawn."""
    status = item_status(item)
    holds_value = any(s.delivery_status not in NO_VALUE for s in item.services)
    assert (status is OrderItemStatus.ACTIVE) == holds_value
    if status is OrderItemStatus.CLOSED:
        assert all(s.delivery_status in NO_VALUE for s in item.services)
    if status is OrderItemStatus.CANCELLED:
        assert all(s.status in (SS.CANCELLED, SS.TRANSFERRED) for s in item.services)


@given(orders)
def test_order_is_closed_exactly_when_nothing_holds_value(order: Order) -> None:
    """CLOSED iff every item is CLOSED or CANCELLED and every service DELIVERED or REMOVED."""
    closed = order_status(order) is OneOrderStatus.CLOSED
    assert closed == all(s.delivery_status in NO_VALUE for i in order.items for s in i.services)
    if closed:
        assert all(item_status(i) is not OrderItemStatus.ACTIVE for i in order.items)


@given(orders)
def test_view_leaves_out_cancelled_items_unless_all_went_together(order: Order) -> None:
    """ACTIVE and CLOSED items always show; CANCELLED ones only if all items were cancelled at once."""
    shown = {i.order_item_id for i in visible_items(order)}
    statuses = {i.order_item_id: item_status(i) for i in order.items}
    all_cancelled_together = all(s is OrderItemStatus.CANCELLED for s in statuses.values()) and (
        len({i.cancelled_at_sequence for i in order.items}) == 1
    )
    for item_id, status in statuses.items():
        expected = status is not OrderItemStatus.CANCELLED or all_cancelled_together
        assert (item_id in shown) == expected
    assert [i.order_item_id for i in order_view(order).items] == [i for i in statuses if i in shown]
