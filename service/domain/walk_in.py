"""Walk-in usages: recorded directly as Used once the credential's entitlement was consumed."""

from datetime import datetime

from contracts.commands import CancelOrder, RecordWalkIn
from contracts.statuses import DeliveryStatus, OrderStatus, OrderType, RejectionCode, ServiceStatus
from service.domain.local_effects import Effect, EntitlementCheck, RefundEntitlement
from service.domain.order import Order, OrderItem, ReservationState, services_for
from service.domain.outcome import Decision, change_status, reject
from service.domain.policy import Policy
from service.domain.reasons import Reason
from service.domain.suspension import refuse_if_suspended
from service.domain.transitions import can_become

WALK_IN_ITEM = "ITEM-1"


def record_walk_in(
    existing: Order | None,
    command: RecordWalkIn,
    input_id: str,
    check: EntitlementCheck | None,
    now: datetime,
) -> Decision:
    """Create the order in Used (2): one entitlement unit per passenger was taken beforehand (`check`)."""
    refund: list[Effect] = [
        RefundEntitlement(client_id=command.client_id, credential=command.credential, consumption_id=input_id)
    ]
    if existing is not None:
        decision = reject(
            command, command.type, RejectionCode.ORDER_ALREADY_EXISTS, "order_id is already in use", now
        )
        # Units may have been taken for this input before the order turned out to exist: give them back.
        decision.effects = refund if check is EntitlementCheck.CONSUMED else []
        return decision
    passenger_ids = [p.passenger_id for p in command.passengers]
    if len(set(passenger_ids)) != len(passenger_ids):
        decision = reject(
            command, command.type, RejectionCode.INVALID_COMMAND, "passenger_id values repeat", now
        )
        decision.effects = refund if check is EntitlementCheck.CONSUMED else []
        return decision
    if check is EntitlementCheck.UNKNOWN_CREDENTIAL:
        return reject(
            command, command.type, RejectionCode.UNKNOWN_CREDENTIAL, "no entitlement for credential", now
        )
    if check is not EntitlementCheck.CONSUMED:
        message = f"the credential has fewer than {len(command.passengers)} units left"
        return reject(command, command.type, RejectionCode.ENTITLEMENT_EXHAUSTED, message, now)
    order = Order(
        order_id=command.order_id,
        client_id=command.client_id,
        order_type=OrderType.WALK_IN,
        status=OrderStatus.USED,
        sequence=0,
        created_at=now,
        updated_at=now,
        credential=command.credential,
        entitlement_consumption_id=input_id,
        items=[
            OrderItem(
                order_item_id=WALK_IN_ITEM,
                resource_id=command.resource_id,
                product_type=command.product_type,
                service_date=now.date().isoformat(),
                reservation_id=None,
                reservation=ReservationState.NOT_NEEDED,
                services=services_for(
                    WALK_IN_ITEM, command.passengers, ServiceStatus.CONFIRMED, DeliveryStatus.DELIVERED
                ),
            )
        ],
    )
    return Decision(order=order, events=[change_status(order, OrderStatus.USED, None, now)])


def cancel_walk_in(order: Order, command: CancelOrder, now: datetime, policy: Policy) -> Decision:
    """Resource staff cancel a usage within the resource's window; the entitlement comes back in full."""
    if command.initiated_by != "RESOURCE_STAFF":
        message = "a walk-in usage is cancelled by the resource's staff (initiated_by RESOURCE_STAFF)"
        return reject(command, command.type, RejectionCode.INVALID_STATE, message, now)
    if not can_become(order, OrderStatus.CANCELLED):
        return reject(
            command, command.type, RejectionCode.INVALID_STATE, f"order is {order.status.label}", now
        )
    services = [s for item in order.items for s in item.services]
    if refusal := refuse_if_suspended(command, services, now):
        return refusal
    if any(s.delivery_status is DeliveryStatus.REMOVED for s in services):
        message = "the usage was removed after a suspension: there is nothing to refund"
        return reject(command, command.type, RejectionCode.INVALID_STATE, message, now)
    window = policy.cancellation_window(order.items[0].resource_id)
    if now - order.created_at > window:
        message = f"usages at {order.items[0].resource_id} can be cancelled for {window} after use"
        return reject(command, command.type, RejectionCode.CANCELLATION_WINDOW_CLOSED, message, now)
    updated = order.clone()
    for item in updated.items:
        item.cancelled_at_sequence = order.sequence + 1
        for service in item.services:
            service.status = ServiceStatus.CANCELLED
            service.delivery_status = DeliveryStatus.REMOVED
    reason = command.reason or Reason.CANCELLED_BY_RESOURCE_STAFF
    event = change_status(updated, OrderStatus.CANCELLED, reason, now)
    assert order.credential is not None
    assert order.entitlement_consumption_id is not None
    refund = RefundEntitlement(
        client_id=order.client_id,
        credential=order.credential,
        consumption_id=order.entitlement_consumption_id,
    )
    return Decision(order=updated, events=[event], effects=[refund])
