"""Suspending services (fraud review) and lifting the suspension: back to the status before, or REMOVED.

The seed's rule: SUSPENDED "can only revert back to the previous status. Exception is that Suspended may go
to Removed." A suspension changes no operator status; while it lasts, redemption and cancellation (which
refunds) of the suspended services are refused (`SERVICES_SUSPENDED`, see `refuse_if_suspended`).
"""

from collections.abc import Iterable
from datetime import datetime

from contracts.commands import CancelOrder, ChangeOrder, LiftSuspension, RedeemOrder, SuspendServices
from contracts.statuses import DeliveryStatus, OrderStatus, OrderType, RejectionCode, ServiceStatus
from service.domain.order import Order, OrderItem, ReservationState, Service
from service.domain.outcome import Decision, change_status, reject
from service.domain.reasons import Reason, ReleaseReason
from service.domain.reservations import release_request, withdraw_change_of_withdrawn_item
from service.domain.resource_requests import ReleaseRequest, ReserveRequest

SUSPENDABLE = (DeliveryStatus.READY_TO_DELIVER, DeliveryStatus.DELIVERED)
"""A service ready for use, or one already used (a usage under review), can be suspended."""

_SUSPENDABLE_ORDERS = (OrderStatus.CONFIRMED, OrderStatus.USED)


def suspend_services(order: Order, command: SuspendServices, now: datetime) -> Decision:
    """The named services (every suspendable one by default) become SUSPENDED; the status stays."""
    if order.status not in _SUSPENDABLE_ORDERS:
        return reject(
            command, command.type, RejectionCode.INVALID_STATE, f"order is {order.status.label}", now
        )
    services = _live_services(order)
    candidates = {s.service_id for s in services.values() if s.delivery_status in SUSPENDABLE}
    wanted = set(command.service_ids or candidates)
    if unknown := wanted - set(_all_services(order)):
        return reject(
            command, command.type, RejectionCode.UNKNOWN_SERVICE, f"no such services: {sorted(unknown)}", now
        )
    if not wanted or wanted - candidates:
        message = f"not ready or delivered, or already suspended: {sorted(wanted - candidates)}"
        return reject(command, command.type, RejectionCode.INVALID_STATE, message, now)
    updated = order.clone()
    for service in _live_services(updated).values():
        if service.service_id in wanted:
            service.suspended_from = service.delivery_status
            service.delivery_status = DeliveryStatus.SUSPENDED
    default = (
        Reason.SUSPENDED_BY_RESOURCE_STAFF
        if command.initiated_by == "RESOURCE_STAFF"
        else Reason.SUSPENDED_BY_OPERATOR
    )
    event = change_status(updated, order.status, command.reason or default, now)
    return Decision(order=updated, events=[event])


def lift_suspension(order: Order, command: LiftSuspension, now: datetime) -> Decision:
    """REVERT: each named suspended service (all by default) gets its status before back. REMOVE: they are
    REMOVED (no refund); an item left with nothing is cancelled, and its reservation released unless it
    was used; a Confirmed prebooking left with no item is Cancelled."""
    suspended = {
        s.service_id for s in _all_services(order).values() if s.delivery_status is DeliveryStatus.SUSPENDED
    }
    wanted = set(command.service_ids or suspended)
    if unknown := wanted - set(_all_services(order)):
        return reject(
            command, command.type, RejectionCode.UNKNOWN_SERVICE, f"no such services: {sorted(unknown)}", now
        )
    if not wanted or wanted - suspended:
        message = f"not suspended: {sorted(wanted - suspended) or 'no service'}"
        return reject(command, command.type, RejectionCode.INVALID_STATE, message, now)
    updated = order.clone()
    for service in _all_services(updated).values():
        if service.service_id in wanted:
            if command.resolution == "REVERT":
                assert service.suspended_from is not None
                service.delivery_status = service.suspended_from
            else:
                service.status = ServiceStatus.CANCELLED
                service.delivery_status = DeliveryStatus.REMOVED
    if command.resolution == "REVERT":
        event = change_status(updated, order.status, command.reason or Reason.SUSPENSION_REVERTED, now)
        return Decision(order=updated, events=[event])
    releases = _withdraw_emptied_items(updated, updated.sequence + 1)
    releases += withdraw_change_of_withdrawn_item(updated)
    reason = command.reason or Reason.SUSPENDED_SERVICES_REMOVED
    nothing_left = all(item.cancelled_at_sequence is not None for item in updated.items)
    status = (
        OrderStatus.CANCELLED
        if nothing_left and order.order_type is OrderType.PREBOOKING and order.status is OrderStatus.CONFIRMED
        else order.status
    )
    return Decision(order=updated, events=[change_status(updated, status, reason, now)], requests=releases)


def refuse_if_suspended(
    command: CancelOrder | RedeemOrder | ChangeOrder, services: Iterable[Service], now: datetime
) -> Decision | None:
    """The `SERVICES_SUSPENDED` rejection of a redemption or cancellation touching suspended services."""
    held = sorted(s.service_id for s in services if s.delivery_status is DeliveryStatus.SUSPENDED)
    if not held:
        return None
    message = f"suspended until the suspension is lifted: {held}"
    return reject(command, command.type, RejectionCode.SERVICES_SUSPENDED, message, now)


def _withdraw_emptied_items(updated: Order, at_sequence: int) -> list[ReserveRequest | ReleaseRequest]:
    releases: list[ReserveRequest | ReleaseRequest] = []
    for item in updated.items:
        if item.cancelled_at_sequence is not None or not _all_removed(item):
            continue
        item.cancelled_at_sequence = at_sequence
        used = any(s.suspended_from is DeliveryStatus.DELIVERED for s in item.services)
        if item.reservation is ReservationState.CONFIRMED and not used:
            # Capacity held for a use that will not happen goes back; a used one was consumed already.
            item.reservation = ReservationState.RELEASED
            releases.append(release_request(updated, item, ReleaseReason.ORDER_CANCELLED))
    return releases


def _all_removed(item: OrderItem) -> bool:
    return all(s.delivery_status is DeliveryStatus.REMOVED for s in item.services)


def _all_services(order: Order) -> dict[str, Service]:
    return {s.service_id: s for item in order.items for s in item.services}


def _live_services(order: Order) -> dict[str, Service]:
    return {
        s.service_id: s for item in order.items if item.cancelled_at_sequence is None for s in item.services
    }
