"""No-shows: a confirmed booking whose date (plus the resource's grace) passed with services never used.

The seed: NOT_CLAIMED is "not claimed by the Passenger for reasons as a result of Passenger action or
inaction (e.g., Passenger no-show)". The operator status stays (Confirmed, or Used when some passengers
came): nothing of the operator seed's statuses fits better (Used claims a use, Cancelled a cancellation and
refund, Failed a reservation that could not be confirmed), and the ONE Order view says CLOSED.
"""

from collections.abc import Iterable
from datetime import datetime

from contracts.commands import CancelOrder, ChangeOrder, RedeemOrder
from contracts.statuses import DeliveryStatus, OrderStatus, RejectionCode
from service.domain.order import Order, Service
from service.domain.outcome import Decision, change_status, reject
from service.domain.policy import Policy, whole_milliseconds
from service.domain.reasons import Reason
from service.domain.transitions import no_show_deadline

_CLAIMABLE_ORDERS = (OrderStatus.CONFIRMED, OrderStatus.USED)


def declare_no_show(order: Order, now: datetime, policy: Policy) -> Decision:
    """The no-show deadline passed: every ready service of a live item becomes NOT_CLAIMED, with an event
    (reason NO_SHOW) and the status unchanged. Suspended services are left to their review.

    A firing before the order's current deadline (a change moved the date later since it was set) changes
    nothing: the moved date's own deadline fires then."""
    if order.status not in _CLAIMABLE_ORDERS or not _unclaimed(order):
        return Decision.nothing()
    due = no_show_deadline(order, policy)
    if due is None or now < whole_milliseconds(due):
        return Decision.nothing()
    updated = order.clone()
    for item in updated.items:
        if item.cancelled_at_sequence is None:
            for service in item.services:
                if service.delivery_status is DeliveryStatus.READY_TO_DELIVER:
                    service.delivery_status = DeliveryStatus.NOT_CLAIMED
    return Decision(order=updated, events=[change_status(updated, order.status, Reason.NO_SHOW, now)])


def _unclaimed(order: Order) -> bool:
    return any(
        service.delivery_status is DeliveryStatus.READY_TO_DELIVER
        for item in order.items
        if item.cancelled_at_sequence is None
        for service in item.services
    )


def refuse_if_not_claimed(
    command: CancelOrder | RedeemOrder | ChangeOrder, services: Iterable[Service], now: datetime
) -> Decision | None:
    """The `SERVICES_NOT_CLAIMED` rejection of a redemption or cancellation touching no-show services."""
    missed = sorted(s.service_id for s in services if s.delivery_status is DeliveryStatus.NOT_CLAIMED)
    if not missed:
        return None
    message = f"not claimed by their service date: {missed}"
    return reject(command, command.type, RejectionCode.SERVICES_NOT_CLAIMED, message, now)
