"""Prebooking orders: created Pending, confirmed or failed by the resources' replies or by the clock."""

from datetime import datetime

from contracts.commands import CreatePrebooking
from contracts.resources import ReservationConfirmed, ReservationFailed, ReservationWaitlisted
from contracts.statuses import DeliveryStatus, OrderStatus, OrderType, RejectionCode, ServiceStatus
from service.domain.local_effects import ScheduleConfirmationTimeout, ScheduleWaitlistTimeout
from service.domain.order import Order, OrderItem, ReservationState, services_for
from service.domain.outcome import Decision, change_status, reject
from service.domain.policy import Policy
from service.domain.reasons import Anomaly, Reason, ReleaseReason
from service.domain.reservations import (
    AWAITING,
    release_request,
    reserve_request,
    withdraw,
    withdraw_change_of_withdrawn_item,
)
from service.domain.resource_requests import ReleaseRequest, ReserveRequest


def create_prebooking(
    existing: Order | None, command: CreatePrebooking, now: datetime, policy: Policy
) -> Decision:
    """Store a new Pending order, ask each item's resource for a reservation, and start the clock."""
    if existing is not None:
        return reject(
            command, command.type, RejectionCode.ORDER_ALREADY_EXISTS, "order_id is already in use", now
        )
    item_ids = [item.order_item_id or f"ITEM-{n}" for n, item in enumerate(command.items, start=1)]
    if len(set(item_ids)) != len(item_ids):
        return reject(
            command, command.type, RejectionCode.INVALID_COMMAND, "order_item_id values repeat", now
        )
    items = []
    for item_id, item in zip(item_ids, command.items, strict=True):
        passenger_ids = [p.passenger_id for p in item.passengers]
        if len(set(passenger_ids)) != len(passenger_ids):
            message = f"{item_id}: passenger_id values repeat"
            return reject(command, command.type, RejectionCode.INVALID_COMMAND, message, now)
        items.append(
            OrderItem(
                order_item_id=item_id,
                resource_id=item.resource_id,
                product_type=item.product_type,
                service_date=item.service_date.isoformat(),
                reservation_id=f"{command.client_id}/{command.order_id}/{item_id}",
                reservation=ReservationState.REQUESTED,
                services=services_for(
                    item_id, item.passengers, ServiceStatus.REQUESTED, DeliveryStatus.REQUESTED
                ),
            )
        )
    order = Order(
        order_id=command.order_id,
        client_id=command.client_id,
        order_type=OrderType.PREBOOKING,
        status=OrderStatus.PENDING,
        sequence=0,
        created_at=now,
        updated_at=now,
        items=items,
    )
    event = change_status(order, OrderStatus.PENDING, None, now)
    requests: list[ReserveRequest | ReleaseRequest] = [reserve_request(order, item) for item in order.items]
    deadline = ScheduleConfirmationTimeout(
        client_id=order.client_id, order_id=order.order_id, deadline=now + policy.confirmation_timeout
    )
    return Decision(order=order, events=[event], requests=requests, effects=[deadline])


def confirm_reservation(order: Order, reply: ReservationConfirmed, now: datetime) -> Decision:
    """A resource holds capacity: confirm the item, and the order once every live item is confirmed."""
    item = order.item_by_reservation(reply.reservation_id)
    if item is None:
        return Decision(anomaly=Anomaly.UNKNOWN_RESERVATION)
    if item.reservation in (ReservationState.WITHDRAWN, ReservationState.FAILED) or (
        item.reservation in AWAITING and order.status is not OrderStatus.PENDING
    ):
        return _release_late_confirmation(order, reply.reservation_id)
    if item.reservation not in AWAITING:
        return Decision(anomaly=Anomaly.reply_for(item.reservation))
    updated = order.clone()
    item = _item_of(updated, reply.reservation_id)
    item.reservation = ReservationState.CONFIRMED
    item.booking_reference = reply.booking_reference
    for service in item.services:
        service.status = ServiceStatus.CONFIRMED
        service.delivery_status = DeliveryStatus.READY_TO_DELIVER
    decision = Decision(order=updated)
    if all_live_items_confirmed(updated):
        decision.events.append(change_status(updated, OrderStatus.CONFIRMED, None, now))
    else:
        updated.updated_at = now
    return decision


def _release_late_confirmation(order: Order, reservation_id: str) -> Decision:
    # Too late (the item or order was withdrawn meanwhile), or contradicting the resource's own refusal:
    # either way the resource now says it holds capacity that no order uses, so give it back
    # (compensation; same request_id as any earlier release, so the resource can recognise a repeat).
    updated = order.clone()
    item = _item_of(updated, reservation_id)
    item.reservation = ReservationState.RELEASED
    release = release_request(updated, item, ReleaseReason.LATE_CONFIRMATION)
    return Decision(order=updated, requests=[release], anomaly=Anomaly.LATE_CONFIRMATION)


def fail_reservation(order: Order, reply: ReservationFailed, now: datetime) -> Decision:
    """A resource refused: the whole order fails, and capacity held or requested elsewhere is released."""
    item = order.item_by_reservation(reply.reservation_id)
    if item is None:
        return Decision(anomaly=Anomaly.UNKNOWN_RESERVATION)
    if item.reservation is ReservationState.WITHDRAWN:
        updated = order.clone()
        _item_of(updated, reply.reservation_id).reservation = ReservationState.FAILED
        return Decision(order=updated, anomaly=Anomaly.LATE_FAILURE)
    if item.reservation not in AWAITING or order.status is not OrderStatus.PENDING:
        return Decision(anomaly=Anomaly.reply_for(item.reservation))
    updated = order.clone()
    _item_of(updated, reply.reservation_id).reservation = ReservationState.FAILED
    return _fail_in_place(updated, reply.reason_code, now, unable=(ReservationState.FAILED,))


def waitlist_reservation(
    order: Order, reply: ReservationWaitlisted, now: datetime, policy: Policy
) -> Decision:
    """A resource put the item on its waitlist: its services become WAITLISTED, the order stays Pending
    (an event with reason WAITLISTED says so) and its deadline becomes the waitlist deadline."""
    item = order.item_by_reservation(reply.reservation_id)
    if item is None:
        return Decision(anomaly=Anomaly.UNKNOWN_RESERVATION)
    if item.reservation is ReservationState.WITHDRAWN:
        # The `release` already follows the `reserve` on the resource's partition: nothing to send.
        return Decision(anomaly=Anomaly.LATE_WAITLISTING)
    if item.reservation is not ReservationState.REQUESTED or order.status is not OrderStatus.PENDING:
        return Decision(anomaly=Anomaly.reply_for(item.reservation))
    updated = order.clone()
    item = _item_of(updated, reply.reservation_id)
    item.reservation = ReservationState.WAITLISTED
    for service in item.services:
        service.status = ServiceStatus.WAITLISTED
    event = change_status(updated, OrderStatus.PENDING, Reason.WAITLISTED, now)
    decision = Decision(order=updated, events=[event])
    if policy.waitlist_extends:
        decision.effects.append(
            ScheduleWaitlistTimeout(
                client_id=order.client_id,
                order_id=order.order_id,
                deadline=order.created_at + policy.waitlist_timeout,
            )
        )
    return decision


def expire_confirmation(order: Order, now: datetime, policy: Policy) -> Decision:
    """The confirmation deadline passed: a still Pending order fails, unless an item is waitlisted and the
    waitlist deadline is the later one (it decides then); any other order is left alone."""
    if order.status is not OrderStatus.PENDING:
        return Decision.nothing()
    if policy.waitlist_extends and _has_waitlisted_item(order):
        return Decision.nothing()
    return _fail_in_place(order.clone(), Reason.CONFIRMATION_TIMEOUT, now, unable=AWAITING)


def expire_waitlist(order: Order, now: datetime) -> Decision:
    """The waitlist deadline passed: a still Pending order fails with WAITLIST_TIMEOUT."""
    if order.status is not OrderStatus.PENDING:
        return Decision.nothing()
    return _fail_in_place(order.clone(), Reason.WAITLIST_TIMEOUT, now, unable=AWAITING)


def _has_waitlisted_item(order: Order) -> bool:
    return any(
        item.reservation is ReservationState.WAITLISTED and item.cancelled_at_sequence is None
        for item in order.items
    )


def _fail_in_place(
    updated: Order, reason: str, now: datetime, *, unable: tuple[ReservationState, ...]
) -> Decision:
    """Fail the Pending order `updated`, the handler's clone: every live item is withdrawn at once.

    Items whose reservation is in `unable` (the one the resource refused; on a timeout, those it never
    answered) are left UNABLE_TO_DELIVER, so a reader tells a refusal from a cancellation; their siblings,
    withdrawn because of them, are REMOVED.
    """
    at_sequence = updated.sequence + 1
    releases: list[ReserveRequest | ReleaseRequest] = []
    for item in updated.items:
        if item.cancelled_at_sequence is None:
            delivery = (
                DeliveryStatus.UNABLE_TO_DELIVER if item.reservation in unable else DeliveryStatus.REMOVED
            )
            releases += withdraw(updated, item, at_sequence, ReleaseReason.ORDER_FAILED, delivery)
    releases += withdraw_change_of_withdrawn_item(updated)
    event = change_status(updated, OrderStatus.FAILED, reason, now)
    return Decision(order=updated, events=[event], requests=releases)


def _item_of(updated: Order, reservation_id: str) -> OrderItem:
    """The clone's item for a reservation the guards already found on the original."""
    item = updated.item_by_reservation(reservation_id)
    assert item is not None
    return item


def all_live_items_confirmed(order: Order) -> bool:
    """Whether every item not cancelled holds a confirmed reservation (and at least one such item exists)."""
    live = [item for item in order.items if item.cancelled_at_sequence is None]
    return bool(live) and all(item.reservation is ReservationState.CONFIRMED for item in live)
