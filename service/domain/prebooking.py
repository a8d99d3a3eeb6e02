"""Prebooking orders: created Pending, confirmed or failed by the resources' replies."""

from datetime import datetime

from contracts.base import Passenger
from contracts.commands import CreatePrebooking
from contracts.resources import ReleaseRequest, ReservationConfirmed, ReservationFailed, ReserveRequest
from contracts.statuses import DeliveryStatus, OrderStatus, OrderType, RejectionCode, ServiceStatus
from service.domain.decisions import Decision, change_status, reject
from service.domain.order import Order, OrderItem, ReservationState, Service


def create_prebooking(existing: Order | None, command: CreatePrebooking, now: datetime) -> Decision:
    """Store a new Pending order and ask each item's resource for a reservation."""
    if existing is not None:
        return reject(
            command, command.type, RejectionCode.ORDER_ALREADY_EXISTS, "order_id is already in use", now
        )
    item_ids = [item.order_item_id or f"ITEM-{n}" for n, item in enumerate(command.items, start=1)]
    if len(set(item_ids)) != len(item_ids):
        return reject(
            command, command.type, RejectionCode.INVALID_STATE, "order_item_id values must be unique", now
        )
    items = []
    for item_id, item in zip(item_ids, command.items, strict=True):
        passenger_ids = [p.passenger_id for p in item.passengers]
        if len(set(passenger_ids)) != len(passenger_ids):
            return reject(
                command,
                command.type,
                RejectionCode.INVALID_STATE,
                f"{item_id}: passenger_id values repeat",
                now,
            )
        items.append(
            OrderItem(
                order_item_id=item_id,
                resource_id=item.resource_id,
                product_type=item.product_type,
                service_date=item.service_date.isoformat(),
                reservation_id=f"{command.order_id}/{item_id}",
                reservation=ReservationState.REQUESTED,
                services=[
                    Service(
                        service_id=f"{item_id}-{p.passenger_id}",
                        passenger_id=p.passenger_id,
                        passenger_name=p.name,
                        status=ServiceStatus.REQUESTED,
                        delivery_status=DeliveryStatus.REQUESTED,
                    )
                    for p in item.passengers
                ],
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
    return Decision(order=order, events=[event], requests=[_reserve(order, item) for item in order.items])


def confirm_reservation(order: Order, reply: ReservationConfirmed, now: datetime) -> Decision:
    """A resource holds capacity: confirm the item, and the order once every item is confirmed."""
    order = order.model_copy(deep=True)
    item = order.item_by_reservation(reply.reservation_id)
    if item is None:
        return Decision(anomaly="UNKNOWN_RESERVATION")
    if item.reservation is not ReservationState.REQUESTED:
        return Decision(anomaly=f"REPLY_FOR_{item.reservation}_RESERVATION")
    if order.status is not OrderStatus.PENDING:
        # Too late: the order was cancelled or failed meanwhile. Give the capacity back (compensation).
        item.reservation = ReservationState.RELEASED
        return Decision(
            order=order, requests=[_release(order, item, "LATE_CONFIRMATION")], anomaly="LATE_CONFIRMATION"
        )
    item.reservation = ReservationState.CONFIRMED
    for service in item.services:
        service.status = ServiceStatus.CONFIRMED
        service.delivery_status = DeliveryStatus.READY_TO_DELIVER
    decision = Decision(order=order)
    if all(i.reservation is ReservationState.CONFIRMED for i in order.items):
        decision.events.append(change_status(order, OrderStatus.CONFIRMED, None, now))
    else:
        order.updated_at = now
    return decision


def fail_reservation(order: Order, reply: ReservationFailed, now: datetime) -> Decision:
    """A resource refused: the whole order fails, and capacity already held elsewhere is released."""
    order = order.model_copy(deep=True)
    item = order.item_by_reservation(reply.reservation_id)
    if item is None:
        return Decision(anomaly="UNKNOWN_RESERVATION")
    if item.reservation is not ReservationState.REQUESTED:
        return Decision(anomaly=f"REPLY_FOR_{item.reservation}_RESERVATION")
    item.reservation = ReservationState.FAILED
    if order.status is not OrderStatus.PENDING:
        return Decision(order=order, anomaly="LATE_FAILURE")
    return fail_order(order, reply.reason_code, now)


def fail_order(order: Order, reason: str, now: datetime) -> Decision:
    """Fail a Pending order (mutating `order`): every item is withdrawn, confirmed capacity released."""
    releases: list[ReserveRequest | ReleaseRequest] = []
    sequence_of_failure = order.sequence + 1
    for item in order.items:
        if item.reservation is ReservationState.CONFIRMED:
            item.reservation = ReservationState.RELEASED
            releases.append(_release(order, item, "ORDER_FAILED"))
        item.cancelled_at_sequence = sequence_of_failure
        for service in item.services:
            service.status = ServiceStatus.CANCELLED
            service.delivery_status = DeliveryStatus.REMOVED
    event = change_status(order, OrderStatus.FAILED, reason, now)
    return Decision(order=order, events=[event], requests=releases)


def _reserve(order: Order, item: OrderItem) -> ReserveRequest:
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


def _release(order: Order, item: OrderItem, reason: str) -> ReleaseRequest:
    assert item.reservation_id is not None
    return ReleaseRequest(
        request_id=f"{item.reservation_id}/release",
        order_id=order.order_id,
        reservation_id=item.reservation_id,
        resource_id=item.resource_id,
        reason=reason,
        passengers=_passengers(item),
    )


def _passengers(item: OrderItem) -> list[Passenger]:
    return [Passenger(passenger_id=s.passenger_id, name=s.passenger_name) for s in item.services]
