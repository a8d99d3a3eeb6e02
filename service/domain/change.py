"""Order changes (reschedule): one item of a prebooking moves to another service date or resource.

The order holds the original item until the new one's resource confirms: then, in one transaction, the
moved services become TRANSFERRED in the original item (its reservation released) and appear, with the
same ServiceIDs (the seed: "the ServiceID should remain unchanged when the Service has been transferred"),
in the new item. If the resource refuses, or does not confirm by the change's deadline, the order stays as
it was. The passenger holds the original item or the new one at every step, never nothing.
"""

from collections.abc import Sequence
from datetime import datetime

from contracts.commands import ChangeOrder
from contracts.limits import MAX_CHANGES_PER_ORDER
from contracts.resources import ReservationConfirmed, ReservationFailed
from contracts.statuses import DeliveryStatus, OrderStatus, OrderType, RejectionCode, ServiceStatus
from service.domain.local_effects import ScheduleChangeTimeout
from service.domain.no_show import refuse_if_not_claimed
from service.domain.order import ItemChange, Order, OrderItem, ReservationState, Service, copy_item
from service.domain.outcome import Decision, change_status, reject
from service.domain.policy import Policy, whole_milliseconds
from service.domain.reasons import Anomaly, Reason, ReleaseReason
from service.domain.reservations import (
    AWAITING,
    release_request,
    reserve_request,
    withdraw_pending_change,
)
from service.domain.resource_requests import ReleaseRequest, ReserveRequest
from service.domain.suspension import refuse_if_suspended
from service.domain.transitions import can_become

_CHANGEABLE_ORDERS = (OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.USED)
"""A Used prebooking may still move an item nobody used yet."""


def request_change(order: Order, command: ChangeOrder, now: datetime, policy: Policy) -> Decision:
    """Ask the new item's resource for a reservation; the order keeps its original item meanwhile."""

    def refuse(code: RejectionCode, message: str) -> Decision:
        return reject(command, command.type, code, message, now)

    if order.order_type is not OrderType.PREBOOKING or order.status not in _CHANGEABLE_ORDERS:
        return refuse(RejectionCode.INVALID_STATE, f"order is {order.status.label}")
    item = next((i for i in order.items if i.order_item_id == command.order_item_id), None)
    if item is None:
        return refuse(RejectionCode.UNKNOWN_ORDER_ITEM, f"no such order item: {command.order_item_id}")
    if refusal := _refuse_unmovable(command, item, now):
        return refusal
    if order.pending_change is not None:
        return refuse(RejectionCode.CHANGE_IN_PROGRESS, "an earlier change awaits its resource's reply")
    if len(order.changes) >= MAX_CHANGES_PER_ORDER:
        return refuse(RejectionCode.CHANGE_LIMIT_REACHED, f"at most {MAX_CHANGES_PER_ORDER} changes")
    service_date = command.service_date.isoformat() if command.service_date else item.service_date
    resource_id = command.resource_id or item.resource_id
    if (service_date, resource_id) == (item.service_date, item.resource_id):
        return refuse(RejectionCode.INVALID_COMMAND, "same service date and resource as the item's")
    new_item_id = command.new_order_item_id or f"CHANGE-{len(order.changes) + 1}"
    taken = {i.order_item_id for i in order.items} | {c.item.order_item_id for c in order.changes}
    if new_item_id in taken:
        return refuse(RejectionCode.INVALID_COMMAND, f"order_item_id {new_item_id} is already in use")
    updated = order.clone()
    new_item = OrderItem(
        order_item_id=new_item_id,
        resource_id=resource_id,
        product_type=item.product_type,
        service_date=service_date,
        reservation_id=f"{order.client_id}/{order.order_id}/{new_item_id}",
        reservation=ReservationState.REQUESTED,
        services=[
            Service(
                service_id=s.service_id,
                passenger_id=s.passenger_id,
                passenger_name=s.passenger_name,
                status=ServiceStatus.REQUESTED,
                delivery_status=DeliveryStatus.REQUESTED,
            )
            for s in item.services
        ],
    )
    deadline = whole_milliseconds(now + policy.confirmation_timeout)
    updated.changes.append(ItemChange(from_item_id=item.order_item_id, item=new_item, deadline=deadline))
    event = change_status(updated, order.status, Reason.CHANGE_REQUESTED, now)
    timer = ScheduleChangeTimeout(client_id=order.client_id, order_id=order.order_id, deadline=deadline)
    return Decision(
        order=updated, events=[event], requests=[reserve_request(updated, new_item)], effects=[timer]
    )


def _refuse_unmovable(command: ChangeOrder, item: OrderItem, now: datetime) -> Decision | None:
    if any(s.delivery_status is DeliveryStatus.DELIVERED for s in item.services):
        message = f"{item.order_item_id}: delivered services cannot move"
        return reject(command, command.type, RejectionCode.SERVICES_DELIVERED, message, now)
    refusal = refuse_if_suspended(command, item.services, now) or refuse_if_not_claimed(
        command, item.services, now
    )
    if refusal:
        return refusal
    if (
        item.cancelled_at_sequence is not None
        or item.reservation is not ReservationState.CONFIRMED
        # A service removed after a suspension: the change could never be carried out (`_movable`), and
        # the new item would have given it back.
        or any(s.delivery_status is DeliveryStatus.REMOVED for s in item.services)
    ):
        message = (
            f"{item.order_item_id}: only a live item with a confirmed reservation and every service"
            " ready to deliver can move"
        )
        return reject(command, command.type, RejectionCode.INVALID_STATE, message, now)
    return None


def _movable(order: Order, change: ItemChange) -> bool:
    """Whether the change's original item can still give its services to the new one."""
    item = next(i for i in order.items if i.order_item_id == change.from_item_id)
    return (
        order.status in _CHANGEABLE_ORDERS
        and item.cancelled_at_sequence is None
        and item.reservation is ReservationState.CONFIRMED
        and all(s.delivery_status is DeliveryStatus.READY_TO_DELIVER for s in item.services)
    )


def confirm_change(order: Order, reply: ReservationConfirmed, now: datetime) -> Decision:
    """The new item's resource confirmed: the services move, the original reservation is released.

    If the original item can no longer move (redeemed, cancelled, suspended or not claimed meanwhile), the
    new reservation is released instead and the order stays as it was (CHANGE_ABANDONED).
    """
    change = order.change_by_reservation(reply.reservation_id)
    assert change is not None
    if change.item.reservation not in AWAITING:
        if change.item.reservation in (ReservationState.WITHDRAWN, ReservationState.FAILED):
            return _release_late(order, reply.reservation_id)
        return Decision(anomaly=Anomaly.reply_for(change.item.reservation))
    updated = order.clone()
    new_change = updated.change_by_reservation(reply.reservation_id)
    assert new_change is not None
    if not _movable(order, change):
        new_change.item.reservation = ReservationState.RELEASED
        release = release_request(updated, new_change.item, ReleaseReason.CHANGE_WITHDRAWN)
        return _settle(updated, order, Reason.CHANGE_ABANDONED, now, [release])
    original = next(i for i in updated.items if i.order_item_id == change.from_item_id)
    at_sequence = updated.sequence + 1
    original.cancelled_at_sequence = at_sequence
    original.reservation = ReservationState.RELEASED
    for service in original.services:
        service.status = ServiceStatus.TRANSFERRED
        service.delivery_status = DeliveryStatus.REMOVED
    new_change.item.reservation = ReservationState.CONFIRMED
    new_change.item.booking_reference = reply.booking_reference
    for service in new_change.item.services:
        service.status = ServiceStatus.CONFIRMED
        service.delivery_status = DeliveryStatus.READY_TO_DELIVER
    updated.items.append(copy_item(new_change.item))
    release = release_request(updated, original, ReleaseReason.ORDER_CHANGED)
    # The status stays: the original item was confirmed, so a Pending order still awaits its other items.
    event = change_status(updated, order.status, Reason.ORDER_CHANGED, now)
    return Decision(order=updated, events=[event], requests=[release])


def fail_change(order: Order, reply: ReservationFailed, now: datetime) -> Decision:
    """The new item's resource refused: the order stays as it was (CHANGE_REFUSED)."""
    change = order.change_by_reservation(reply.reservation_id)
    assert change is not None
    if change.item.reservation is ReservationState.WITHDRAWN:
        updated = order.clone()
        withdrawn = updated.change_by_reservation(reply.reservation_id)
        assert withdrawn is not None
        withdrawn.item.reservation = ReservationState.FAILED
        return Decision(order=updated, anomaly=Anomaly.LATE_FAILURE)
    if change.item.reservation not in AWAITING:
        return Decision(anomaly=Anomaly.reply_for(change.item.reservation))
    updated = order.clone()
    refused = updated.change_by_reservation(reply.reservation_id)
    assert refused is not None
    refused.item.reservation = ReservationState.FAILED
    return _settle(updated, order, Reason.CHANGE_REFUSED, now, [])


def waitlist_change(order: Order, reservation_id: str) -> Decision:
    """The new item's resource put it on its waitlist: the change keeps waiting, until its deadline."""
    change = order.change_by_reservation(reservation_id)
    assert change is not None
    if change.item.reservation is ReservationState.WITHDRAWN:
        return Decision(anomaly=Anomaly.LATE_WAITLISTING)
    if change.item.reservation is not ReservationState.REQUESTED:
        return Decision(anomaly=Anomaly.reply_for(change.item.reservation))
    updated = order.clone()
    waiting = updated.change_by_reservation(reservation_id)
    assert waiting is not None
    waiting.item.reservation = ReservationState.WAITLISTED
    return Decision(order=updated)


def expire_change(order: Order, now: datetime) -> Decision:
    """A change deadline passed: the change still awaiting its reply by then is withdrawn (its `reserve`
    followed by a `release`), and the order stays as it was. A firing for an earlier, settled change, or
    before the pending one's deadline, changes nothing."""
    change = order.pending_change
    if change is None or now < change.deadline:
        return Decision.nothing()
    updated = order.clone()
    releases = withdraw_pending_change(updated)
    return _settle(updated, order, Reason.CHANGE_TIMEOUT, now, releases)


def _settle(
    updated: Order,
    order: Order,
    reason: Reason,
    now: datetime,
    requests: Sequence[ReserveRequest | ReleaseRequest],
) -> Decision:
    # A change settles without moving anything: an event says so while the order can still change (its
    # status unchanged); an order that ended meanwhile already said everything.
    if can_become(order, order.status):
        return Decision(
            order=updated, events=[change_status(updated, order.status, reason, now)], requests=list(requests)
        )
    return Decision(order=updated, requests=list(requests))


def _release_late(order: Order, reservation_id: str) -> Decision:
    # The change was withdrawn or refused, and its resource confirms after all: give the capacity back.
    updated = order.clone()
    change = updated.change_by_reservation(reservation_id)
    assert change is not None
    change.item.reservation = ReservationState.RELEASED
    release = release_request(updated, change.item, ReleaseReason.LATE_CONFIRMATION)
    return Decision(order=updated, requests=[release], anomaly=Anomaly.LATE_CONFIRMATION)
