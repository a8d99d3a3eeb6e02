"""Redeeming a confirmed prebooking: all of its services, or those of the passengers who showed up."""

from datetime import datetime

from contracts.commands import RedeemOrder
from contracts.statuses import DeliveryStatus, OrderStatus, RejectionCode
from service.domain.no_show import refuse_if_not_claimed
from service.domain.order import Order, OrderItem, Service
from service.domain.outcome import Decision, change_status, reject
from service.domain.reasons import Reason
from service.domain.suspension import refuse_if_suspended
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
    targeted = [s for item in order.items if item.cancelled_at_sequence is None for s in item.services]
    named = [s for s in targeted if s.service_id in wanted]
    if refusal := refuse_if_suspended(command, named, now) or refuse_if_not_claimed(command, named, now):
        return refusal
    if not any(_delivers(item, service, wanted) for item in order.items for service in item.services):
        return reject(command, command.type, RejectionCode.INVALID_STATE, "already redeemed", now)
    updated = order.clone()
    for item in updated.items:
        for service in item.services:
            if _delivers(item, service, wanted):
                service.delivery_status = DeliveryStatus.DELIVERED
    reason = Reason.SERVICES_REDEEMED if order.status is OrderStatus.USED else None
    return Decision(order=updated, events=[change_status(updated, OrderStatus.USED, reason, now)])


def _delivers(item: OrderItem, service: Service, wanted: set[str]) -> bool:
    """Whether redeeming `wanted` delivers this service: named, of a live item, ready for use."""
    return (
        item.cancelled_at_sequence is None
        and service.service_id in wanted
        and service.delivery_status is DeliveryStatus.READY_TO_DELIVER
    )
