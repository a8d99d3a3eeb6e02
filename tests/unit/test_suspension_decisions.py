"""Suspending services for a fraud review, and lifting the suspension, decided without I/O."""

from contracts.commands import LiftSuspension, SuspendServices
from contracts.statuses import DeliveryStatus, OneOrderStatus, OrderStatus, RejectionCode
from service.domain.decide import decide
from service.domain.local_effects import EntitlementCheck
from service.domain.order import Order
from service.domain.resource_requests import ReleaseRequest
from testkit.factories import prebooking, walk_in
from tests.unit.test_lifecycle_decisions import NOW, at, cancel, confirmed_order, redeem, stored


def suspend(order: Order, **kwargs: object) -> SuspendServices:
    return SuspendServices(command_id="suspend", client_id=order.client_id, order_id=order.order_id, **kwargs)


def lift(order: Order, resolution: str, **kwargs: object) -> LiftSuspension:
    return LiftSuspension(
        command_id=f"lift-{resolution}",
        client_id=order.client_id,
        order_id=order.order_id,
        resolution=resolution,
        **kwargs,
    )


def delivery(order: Order) -> dict[str, DeliveryStatus]:
    return {s.service_id: s.delivery_status for i in order.items for s in i.services}


def test_suspended_services_refuse_redemption_and_cancellation_then_revert() -> None:
    """SUSPENDED with the status unchanged; redeem and cancel answer SERVICES_SUSPENDED; REVERT gives the
    status before back, after which redemption works."""
    order = confirmed_order("A", passengers=2)

    suspended = decide(order, suspend(order, service_ids=["ITEM-1-PAX-1"]), at(NOW))

    [event] = suspended.events
    assert (event.previous_status, event.status, event.reason) == (1, 1, "SUSPENDED_BY_OPERATOR")
    held = stored(suspended)
    assert delivery(held) == {"ITEM-1-PAX-1": "SUSPENDED", "ITEM-1-PAX-2": "READY_TO_DELIVER"}
    for command in (redeem(held), redeem(held, service_ids=["ITEM-1-PAX-1"]), cancel(held)):
        refusal = decide(held, command, at(NOW)).rejection
        assert refusal is not None and refusal.code is RejectionCode.SERVICES_SUSPENDED
    assert decide(held, redeem(held, service_ids=["ITEM-1-PAX-2"]), at(NOW)).order is not None

    reverted = stored(decide(held, lift(held, "REVERT"), at(NOW)))

    assert delivery(reverted) == delivery(order)
    assert stored(decide(reverted, redeem(reverted), at(NOW))).status is OrderStatus.USED


def test_removing_every_suspended_service_cancels_a_confirmed_prebooking() -> None:
    """REMOVE of all: services CANCELLED / REMOVED, Cancelled (3), the reservation released."""
    order = confirmed_order("A")
    held = stored(decide(order, suspend(order, initiated_by="RESOURCE_STAFF"), at(NOW)))

    removed = decide(held, lift(held, "REMOVE"), at(NOW))

    [event] = removed.events
    assert (event.status, event.reason) == (OrderStatus.CANCELLED, "SUSPENDED_SERVICES_REMOVED")
    assert event.order.status is OneOrderStatus.CLOSED
    assert [type(r) for r in removed.requests] == [ReleaseRequest]
    assert set(delivery(stored(removed)).values()) == {DeliveryStatus.REMOVED}


def test_a_suspended_walk_in_is_not_refunded_and_a_removed_one_never() -> None:
    """A usage under review: staff cancellation (the refund) is refused while suspended; after REMOVE the
    usage stays Used (it happened), with no refund, and cannot be cancelled for one."""
    usage = stored(decide(None, walk_in(), at(NOW, input_id="i1", entitlement=EntitlementCheck.CONSUMED)))
    held = stored(decide(usage, suspend(usage), at(NOW)))
    refusal = decide(held, cancel(held, initiated_by="RESOURCE_STAFF"), at(NOW)).rejection
    assert refusal is not None and refusal.code is RejectionCode.SERVICES_SUSPENDED

    removed = decide(held, lift(held, "REMOVE"), at(NOW))

    assert [(e.status, e.reason) for e in removed.events] == [
        (OrderStatus.USED, "SUSPENDED_SERVICES_REMOVED")
    ]
    assert removed.effects == [] and removed.requests == []
    later = decide(stored(removed), cancel(usage, initiated_by="RESOURCE_STAFF"), at(NOW)).rejection
    assert later is not None and later.code is RejectionCode.INVALID_STATE


def test_suspension_refusals_say_why() -> None:
    """Only ready or delivered services of a Confirmed or Used order can be suspended, each once; only
    suspended ones can be lifted."""
    pending = stored(decide(None, prebooking("A", order_id="ORD-1"), at(NOW)))
    order = confirmed_order("A")
    held = stored(decide(order, suspend(order), at(NOW)))
    cases: list[tuple[Order, SuspendServices | LiftSuspension, RejectionCode]] = [
        (pending, suspend(pending), RejectionCode.INVALID_STATE),
        (order, suspend(order, service_ids=["NOPE"]), RejectionCode.UNKNOWN_SERVICE),
        (held, suspend(held), RejectionCode.INVALID_STATE),
        (order, lift(order, "REVERT"), RejectionCode.INVALID_STATE),
        (held, lift(held, "REMOVE", service_ids=["NOPE"]), RejectionCode.UNKNOWN_SERVICE),
    ]
    for target, command, code in cases:
        rejection = decide(target, command, at(NOW)).rejection
        assert rejection is not None and rejection.code is code, command
