"""Cancelling a prebooking, whole or item by item, with releases to the resources."""

from datetime import datetime

from contracts.commands import CancelOrder
from contracts.statuses import OrderStatus, RejectionCode
from service.domain.no_show import refuse_if_not_claimed
from service.domain.order import Order
from service.domain.outcome import Decision, change_status, reject
from service.domain.prebooking import all_live_items_confirmed
from service.domain.reasons import Reason, ReleaseReason
from service.domain.reservations import withdraw, withdraw_change_of_withdrawn_item
from service.domain.resource_requests import ReleaseRequest, ReserveRequest
from service.domain.suspension import refuse_if_suspended
from service.domain.transitions import can_become


def cancel_prebooking(order: Order, command: CancelOrder, now: datetime) -> Decision:
    """Pending or Confirmed → Cancelled (3); with `order_item_ids` only those items: the order stays."""
    if not can_become(order, OrderStatus.CANCELLED):
        return reject(
            command, command.type, RejectionCode.INVALID_STATE, f"order is {order.status.label}", now
        )
    live = {item.order_item_id: item for item in order.items if item.cancelled_at_sequence is None}
    wanted = set(command.order_item_ids or live)
    unknown = wanted - {item.order_item_id for item in order.items}
    if unknown:
        message = f"no such order items: {sorted(unknown)}"
        return reject(command, command.type, RejectionCode.UNKNOWN_ORDER_ITEM, message, now)
    if wanted - set(live):
        message = f"already cancelled: {sorted(wanted - set(live))}"
        return reject(command, command.type, RejectionCode.INVALID_STATE, message, now)
    touched = [s for item in order.items if item.order_item_id in wanted for s in item.services]
    if refusal := refuse_if_suspended(command, touched, now) or refuse_if_not_claimed(command, touched, now):
        return refusal
    updated = order.clone()
    at_sequence = updated.sequence + 1
    releases: list[ReserveRequest | ReleaseRequest] = []
    for item in updated.items:
        if item.order_item_id in wanted:
            releases += withdraw(updated, item, at_sequence, ReleaseReason.ORDER_CANCELLED)
    releases += withdraw_change_of_withdrawn_item(updated)
    if wanted == set(live):
        initiator = (
            Reason.CANCELLED_BY_RESOURCE_STAFF
            if command.initiated_by == "RESOURCE_STAFF"
            else Reason.CANCELLED_BY_CLIENT
        )
        event = change_status(updated, OrderStatus.CANCELLED, command.reason or initiator, now)
    elif order.status is OrderStatus.PENDING and all_live_items_confirmed(updated):
        # The items still awaiting confirmation were the ones cancelled: what is left is confirmed.
        event = change_status(updated, OrderStatus.CONFIRMED, None, now)
    else:
        event = change_status(updated, order.status, Reason.ITEMS_CANCELLED, now)
    return Decision(order=updated, events=[event], requests=releases)
