"""Requests to resources and the withdrawal of items, shared by failure, timeout and cancellation."""

from contracts.base import Passenger
from contracts.resources import ReleaseRequest, ReserveRequest
from contracts.statuses import DeliveryStatus, ServiceStatus
from service.domain.order import Order, OrderItem, ReservationState
from service.domain.reasons import ReleaseReason

AWAITING = (ReservationState.REQUESTED, ReservationState.WAITLISTED)
"""Reservations the resource has not settled yet: a `confirmed` or `failed` is still to come."""


def reserve_request(order: Order, item: OrderItem) -> ReserveRequest:
    """Ask the item's resource to hold capacity."""
    assert item.reservation_id is not None
    return ReserveRequest(
        request_id=f"{item.reservation_id}/reserve",
        order_id=order.order_id,
        reservation_id=item.reservation_id,
        resource_id=item.resource_id,
        product_type=item.product_type.value,
        service_date=item.service_date or "",
        passengers=_passengers(item),
    )


def release_request(order: Order, item: OrderItem, reason: ReleaseReason) -> ReleaseRequest:
    """Give the item's capacity back."""
    assert item.reservation_id is not None
    return ReleaseRequest(
        request_id=f"{item.reservation_id}/release",
        order_id=order.order_id,
        reservation_id=item.reservation_id,
        resource_id=item.resource_id,
        reason=reason,
        passengers=_passengers(item),
    )


def withdraw(
    order: Order,
    item: OrderItem,
    at_sequence: int,
    reason: ReleaseReason,
    delivery_status: DeliveryStatus = DeliveryStatus.REMOVED,
) -> list[ReleaseRequest]:
    """Cancel an item's services and release whatever the resource holds or may hold.

    The services become `delivery_status`: REMOVED (their value removed by a cancellation or a sibling's
    failure), or UNABLE_TO_DELIVER for the item whose resource refused or never answered in time.

    A reservation still awaiting its reply is released too (WITHDRAWN): the resource reads `release` after
    `reserve` on the same partition. Should it confirm anyway, the late confirmation sends the release again.
    """
    item.cancelled_at_sequence = at_sequence
    for service in item.services:
        service.status = ServiceStatus.CANCELLED
        service.delivery_status = delivery_status
    if item.reservation in AWAITING:
        item.reservation = ReservationState.WITHDRAWN
    elif item.reservation is ReservationState.CONFIRMED:
        item.reservation = ReservationState.RELEASED
    else:
        return []
    return [release_request(order, item, reason)]


def _passengers(item: OrderItem) -> list[Passenger]:
    # Not validated again: the command that created the order was, under the limits of its day, which may
    # have been wider (names of up to 200 characters before contract v1.1). Refusing to release capacity
    # for such an order now would help nobody.
    return [
        Passenger.model_construct(passenger_id=s.passenger_id, name=s.passenger_name) for s in item.services
    ]
