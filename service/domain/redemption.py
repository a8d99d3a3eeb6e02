"""Redeeming a confirmed prebooking: all of its services, or those of the passengers who showed up."""

from datetime import datetime

from contracts.commands import RedeemOrder
from contracts.statuses import DeliveryStatus, OrderStatus, RejectionCode
from service.domain.order import Order
from service.domain.outcome import Decision, change_status, reject
from service.domain.reasons import Reason
from service.domain.transitions import can_become


def redeem(order: Order, command: RedeemOrder, now: datetime) -> Decision:
    """Confirmed → Used (2): the named services (all by default) are DELIVERED; the rest keep their value."""
    if not can_become(order, OrderStatus.USED):  # a walk-in is Used from the start: nothing to redeem
        return reject(
            command, command.type, RejectionCode.INVALID_STATE, f"order is {order.status.label}", now
        )
    services = {s.service_id: (item, s) for item in order.items for s in item.services}
    wanted = set(command.service_ids or services)
    unknown = wanted - set(services)
    if unknown:
        return reject(
            command, command.type, RejectionCode.UNKNOWN_SERVICE, f"no such services: {sorted(unknown)}", now
        )
    if command.service_ids and any(services[s][0].cancelled_at_sequence is not None for s in wanted):
        return reject(command, command.type, RejectionCode.INVALID_STATE, "services of cancelled items", now)
    order = order.clone()
    redeemed = 0
    for item in order.items:
        if item.cancelled_at_sequence is not None:
            continue
        for service in item.services:
            if service.service_id in wanted and service.delivery_status is not DeliveryStatus.DELIVERED:
                service.delivery_status = DeliveryStatus.DELIVERED
                redeemed += 1
    if not redeemed:
        return reject(command, command.type, RejectionCode.INVALID_STATE, "already redeemed", now)
    reason = Reason.SERVICES_REDEEMED if order.status is OrderStatus.USED else None
    return Decision(order=order, events=[change_status(order, OrderStatus.USED, reason, now)])
