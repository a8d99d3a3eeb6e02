"""Requests to resources and the withdrawal of items, shared by failure, timeout and cancellation."""

from contracts.statuses import DeliveryStatus, ServiceStatus
from service.domain.order import Order, OrderItem, ReservationState
from service.domain.reasons import ReleaseReason
from service.domain.resource_requests import Passenger, ReleaseRequest, ReserveRequest

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


def withdraw_change_of_withdrawn_item(updated: Order) -> list[ReleaseRequest]:
    """Give up the pending change of `updated` (a handler's clone) if the item it moves was just withdrawn
    (cancelled, failed, removed): there is nothing left to move."""
    change = updated.pending_change
    if change is None:
        return []
    original = next(i for i in updated.items if i.order_item_id == change.from_item_id)
    return withdraw_pending_change(updated) if original.cancelled_at_sequence is not None else []


def withdraw_pending_change(updated: Order) -> list[ReleaseRequest]:
    """Give up the change of `updated` (a handler's clone) still awaiting its reply, if any: its `release`
    follows its `reserve` on the resource's partition; a confirmation that crosses it is released again."""
    change = updated.pending_change
    if change is None:
        return []
    change.item.reservation = ReservationState.WITHDRAWN
    return [release_request(updated, change.item, ReleaseReason.CHANGE_WITHDRAWN)]


def _passengers(item: OrderItem) -> list[Passenger]:
    # Not validated again (see `resource_requests.Passenger`).
    return [Passenger(s.passenger_id, s.passenger_name) for s in item.services]
