"""Walk-ins, cancellations, redemptions and timeouts, decided without I/O."""

from datetime import UTC, datetime, timedelta

import pytest

from contracts.commands import CancelOrder, RedeemOrder
from contracts.resources import ReservationConfirmed
from contracts.statuses import (
    DeliveryStatus,
    OneOrderStatus,
    OrderItemStatus,
    OrderStatus,
    OrderType,
    RejectionCode,
)
from service.domain.decide import ConfirmationDeadline, Context, decide
from service.domain.local_effects import (
    CancelConfirmationTimeout,
    EntitlementCheck,
    IndexOrder,
    RefundEntitlement,
    ScheduleConfirmationTimeout,
)
from service.domain.order import Order, ReservationState
from service.domain.outcome import Decision, change_status
from service.domain.policy import Policy
from service.domain.resource_requests import ReleaseRequest
from service.domain.transitions import IllegalTransition
from testkit.factories import prebooking, walk_in

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = Policy(
    confirmation_timeout=timedelta(seconds=60),
    walk_in_cancellation_window=timedelta(minutes=30),
    cancellation_windows={"STRICT-LOUNGE": timedelta(minutes=5)},
)


def at(moment: datetime, **kwargs: object) -> Context:
    return Context(moment, POLICY, **kwargs)  # type: ignore[arg-type]


def stored(decision: Decision) -> Order:
    assert decision.order is not None
    return decision.order


def confirmed_order(*resources: str, passengers: int = 1) -> Order:
    order = stored(decide(None, prebooking(*resources, order_id="ORD-1", passengers=passengers), at(NOW)))
    for item in order.items:
        reply = ReservationConfirmed(
            reply_id=f"r-{item.order_item_id}",
            order_id="ORD-1",
            reservation_id=f"client-a/ORD-1/{item.order_item_id}",
        )
        order = stored(decide(order, reply, at(NOW)))
    assert order.status is OrderStatus.CONFIRMED
    return order


def cancel(order: Order, **kwargs: object) -> CancelOrder:
    return CancelOrder(command_id="cancel", client_id=order.client_id, order_id=order.order_id, **kwargs)


def redeem(order: Order, **kwargs: object) -> RedeemOrder:
    return RedeemOrder(command_id="redeem", client_id=order.client_id, order_id=order.order_id, **kwargs)


# Walk-ins


def test_walk_in_is_created_used_and_closed() -> None:
    """Created directly in Used (2): services DELIVERED, item and order CLOSED; never Pending or Confirmed."""
    decision = decide(
        None, walk_in(passengers=2), at(NOW, input_id="cmd/a/1", entitlement=EntitlementCheck.CONSUMED)
    )

    [event] = decision.events
    assert (event.sequence, event.status, event.previous_status) == (1, OrderStatus.USED, None)
    assert event.order_type is OrderType.WALK_IN
    assert event.order.status is OneOrderStatus.CLOSED
    assert [i.status for i in event.order.items] == [OrderItemStatus.CLOSED]
    assert decision.requests == []
    assert decision.effects == [IndexOrder(client_id="client-a", order_id=event.order_id, created_at=NOW)]


def test_walk_in_without_entitlement_is_rejected_with_the_reason() -> None:
    """A walk-in with an unknown credential or no units left is rejected with that code and stores nothing."""
    unknown = decide(None, walk_in(), at(NOW, entitlement=EntitlementCheck.UNKNOWN_CREDENTIAL))
    exhausted = decide(None, walk_in(), at(NOW, entitlement=EntitlementCheck.EXHAUSTED))

    assert unknown.rejection is not None and unknown.rejection.code is RejectionCode.UNKNOWN_CREDENTIAL
    assert exhausted.rejection is not None and exhausted.rejection.code is RejectionCode.ENTITLEMENT_EXHAUSTED
    assert unknown.order is None and exhausted.order is None


def test_walk_in_for_a_used_order_id_gives_back_what_it_consumed() -> None:
    """Units were taken before the order turned out to exist: the rejection refunds them."""
    existing = stored(
        decide(None, walk_in(order_id="W-1"), at(NOW, input_id="i1", entitlement=EntitlementCheck.CONSUMED))
    )
    decision = decide(
        existing, walk_in(order_id="W-1"), at(NOW, input_id="i2", entitlement=EntitlementCheck.CONSUMED)
    )

    assert decision.rejection is not None and decision.rejection.code is RejectionCode.ORDER_ALREADY_EXISTS
    assert decision.effects == [
        RefundEntitlement(client_id="client-a", credential="CARD-1", consumption_id="i2")
    ]


def test_staff_cancel_a_walk_in_within_the_window_and_refund_it() -> None:
    """Staff cancelling a walk-in within its window cancel it, refund its units and remove its services."""
    order = stored(decide(None, walk_in(), at(NOW, input_id="i1", entitlement=EntitlementCheck.CONSUMED)))

    decision = decide(order, cancel(order, initiated_by="RESOURCE_STAFF"), at(NOW + timedelta(minutes=29)))

    [event] = decision.events
    assert (event.status, event.previous_status) == (OrderStatus.CANCELLED, OrderStatus.USED)
    assert decision.effects == [
        RefundEntitlement(client_id="client-a", credential="CARD-1", consumption_id="i1")
    ]
    assert {s.delivery_status for i in stored(decision).items for s in i.services} == {DeliveryStatus.REMOVED}


def test_walk_in_cancellation_follows_the_resource_window_and_initiator() -> None:
    """Staff may cancel a walk-in within its resource's window only; a client may not cancel one at all."""
    default = stored(decide(None, walk_in(), at(NOW, input_id="i1", entitlement=EntitlementCheck.CONSUMED)))
    strict = stored(
        decide(None, walk_in("STRICT-LOUNGE"), at(NOW, input_id="i2", entitlement=EntitlementCheck.CONSUMED))
    )
    later = at(NOW + timedelta(minutes=10))

    late_strict = decide(strict, cancel(strict, initiated_by="RESOURCE_STAFF"), later)
    by_client = decide(default, cancel(default), later)
    in_default_window = decide(default, cancel(default, initiated_by="RESOURCE_STAFF"), later)

    assert (
        late_strict.rejection is not None
        and late_strict.rejection.code is RejectionCode.CANCELLATION_WINDOW_CLOSED
    )
    assert by_client.rejection is not None and by_client.rejection.code is RejectionCode.INVALID_STATE
    assert in_default_window.rejection is None and in_default_window.events[0].status is OrderStatus.CANCELLED


def test_a_cancelled_walk_in_cannot_be_cancelled_again() -> None:
    """The refund happens once: a second cancellation (another command_id) is refused."""
    order = stored(decide(None, walk_in(), at(NOW, input_id="i1", entitlement=EntitlementCheck.CONSUMED)))
    cancelled = stored(decide(order, cancel(order, initiated_by="RESOURCE_STAFF"), at(NOW)))

    again = decide(cancelled, cancel(cancelled, initiated_by="RESOURCE_STAFF"), at(NOW))

    assert again.rejection is not None and again.rejection.code is RejectionCode.INVALID_STATE
    assert again.effects == []


# Prebooking timeouts and cancellations


def test_create_schedules_the_confirmation_deadline() -> None:
    """A prebooking schedules its confirmation deadline (the policy's timeout) and indexes the order."""
    decision = decide(None, prebooking(order_id="ORD-1"), at(NOW))

    assert decision.effects == [
        ScheduleConfirmationTimeout(
            client_id="client-a", order_id="ORD-1", deadline=NOW + timedelta(seconds=60)
        ),
        IndexOrder(client_id="client-a", order_id="ORD-1", created_at=NOW),
    ]


def test_deadline_fails_a_pending_order_and_releases_its_reservations() -> None:
    """At its deadline a Pending order fails: its confirmed items are released, its pending ones withdrawn."""
    order = stored(decide(None, prebooking("A", "B", order_id="ORD-1"), at(NOW)))
    half = stored(
        decide(
            order,
            ReservationConfirmed(reply_id="r", order_id="ORD-1", reservation_id="client-a/ORD-1/ITEM-1"),
            at(NOW),
        )
    )

    decision = decide(half, ConfirmationDeadline("ORD-1"), at(NOW + timedelta(seconds=61)))

    [event] = decision.events
    assert (event.status, event.reason) == (OrderStatus.FAILED, "CONFIRMATION_TIMEOUT")
    assert sorted(r.reservation_id for r in decision.requests) == [
        "client-a/ORD-1/ITEM-1",
        "client-a/ORD-1/ITEM-2",
    ]
    assert [i.reservation for i in stored(decision).items] == [
        ReservationState.RELEASED,
        ReservationState.WITHDRAWN,
    ]


def test_deadline_leaves_an_order_that_left_pending_alone() -> None:
    """A deadline for an order no longer Pending decides nothing."""
    order = confirmed_order("A")

    assert decide(order, ConfirmationDeadline("ORD-1"), at(NOW)).is_no_change
    assert decide(None, ConfirmationDeadline("ORD-1"), at(NOW)).is_no_change, "a forgotten order too"


def test_leaving_pending_cancels_the_deadline() -> None:
    """An order leaving Pending cancels its confirmation timeout."""
    order = stored(decide(None, prebooking("A", order_id="ORD-1"), at(NOW)))

    decision = decide(
        order,
        ReservationConfirmed(reply_id="r", order_id="ORD-1", reservation_id="client-a/ORD-1/ITEM-1"),
        at(NOW),
    )

    assert CancelConfirmationTimeout(client_id="client-a", order_id="ORD-1") in decision.effects


def test_late_confirmation_after_a_timeout_is_released_again() -> None:
    """The resource confirms what we withdrew: compensate with a release, change no status."""
    order = stored(decide(None, prebooking("A", order_id="ORD-1"), at(NOW)))
    failed = stored(decide(order, ConfirmationDeadline("ORD-1"), at(NOW + timedelta(minutes=2))))

    late = decide(
        failed,
        ReservationConfirmed(reply_id="r", order_id="ORD-1", reservation_id="client-a/ORD-1/ITEM-1"),
        at(NOW),
    )

    assert late.anomaly == "LATE_CONFIRMATION" and late.events == []
    assert [(type(r), r.reason) for r in late.requests] == [(ReleaseRequest, "LATE_CONFIRMATION")]  # type: ignore[union-attr]
    assert stored(late).status is OrderStatus.FAILED


def test_client_cancels_a_confirmed_order_and_its_reservations_are_released() -> None:
    """A client's cancellation of a Confirmed order cancels every item, releases each one and closes it."""
    order = confirmed_order("A", "B")

    decision = decide(order, cancel(order), at(NOW))

    [event] = decision.events
    assert (event.status, event.previous_status, event.reason) == (
        OrderStatus.CANCELLED,
        1,
        "CANCELLED_BY_CLIENT",
    )
    assert len(decision.requests) == 2
    # Both items were cancelled in one transaction, so the view still shows them.
    assert [i.status for i in event.order.items] == [OrderItemStatus.CANCELLED] * 2
    assert event.order.status is OneOrderStatus.CLOSED


def test_partial_cancellation_keeps_the_order_usable() -> None:
    """Cancelling one item of two keeps the order Confirmed and OPENED, releasing that item's reservation."""
    order = confirmed_order("A", "B")

    decision = decide(order, cancel(order, order_item_ids=["ITEM-2"]), at(NOW))

    [event] = decision.events
    assert (event.status, event.previous_status, event.reason) == (
        OrderStatus.CONFIRMED,
        1,
        "ITEMS_CANCELLED",
    )
    assert [i.order_item_id for i in event.order.items] == ["ITEM-1"], (
        "the cancelled item is left out of the view"
    )
    assert [r.reservation_id for r in decision.requests] == ["client-a/ORD-1/ITEM-2"]
    assert event.order.status is OneOrderStatus.OPENED


def test_cancelling_the_only_unconfirmed_item_confirms_the_order() -> None:
    """Cancelling the one item still awaiting its reply leaves only confirmed ones: the order is Confirmed."""
    order = stored(decide(None, prebooking("A", "B", order_id="ORD-1"), at(NOW)))
    half = stored(
        decide(
            order,
            ReservationConfirmed(reply_id="r", order_id="ORD-1", reservation_id="client-a/ORD-1/ITEM-1"),
            at(NOW),
        )
    )

    decision = decide(half, cancel(half, order_item_ids=["ITEM-2"]), at(NOW))

    assert [(e.status, e.previous_status) for e in decision.events] == [
        (OrderStatus.CONFIRMED, OrderStatus.PENDING)
    ]


def test_cancellation_refusals_say_why() -> None:
    """Cancelling an unknown item, or a Used order, is refused with the reason."""
    order = confirmed_order("A")
    used = stored(decide(order, redeem(order), at(NOW)))

    unknown_item = decide(order, cancel(order, order_item_ids=["ITEM-9"]), at(NOW))
    after_use = decide(used, cancel(used), at(NOW))

    assert (
        unknown_item.rejection is not None and unknown_item.rejection.code is RejectionCode.UNKNOWN_ORDER_ITEM
    )
    assert after_use.rejection is not None and after_use.rejection.code is RejectionCode.INVALID_STATE


# Redemption


def test_redeeming_everything_uses_and_closes_the_order() -> None:
    """Redeeming every service makes the order Used and CLOSED."""
    order = confirmed_order("A", passengers=2)

    [event] = decide(order, redeem(order), at(NOW)).events

    assert (event.status, event.previous_status) == (OrderStatus.USED, OrderStatus.CONFIRMED)
    assert event.order.status is OneOrderStatus.CLOSED
    assert [i.status for i in event.order.items] == [OrderItemStatus.CLOSED]


def test_partial_redemption_keeps_value_for_the_passenger_who_did_not_show() -> None:
    """One passenger of two shows up: the order is Used, but the item stays ACTIVE and the order OPENED."""
    order = confirmed_order("A", passengers=2)

    first = decide(order, redeem(order, service_ids=["ITEM-1-PAX-1"]), at(NOW))
    [event] = first.events
    assert event.status is OrderStatus.USED
    assert event.order.status is OneOrderStatus.OPENED
    assert [i.status for i in event.order.items] == [OrderItemStatus.ACTIVE]

    rest = decide(stored(first), redeem(order, service_ids=["ITEM-1-PAX-2"]), at(NOW))
    [second] = rest.events
    assert (second.status, second.previous_status, second.reason) == (
        OrderStatus.USED,
        2,
        "SERVICES_REDEEMED",
    )
    assert second.order.status is OneOrderStatus.CLOSED


def test_redemption_refusals_say_why() -> None:
    """Redeeming a Pending or Used order, or an unknown service, is refused with the reason."""
    pending = stored(decide(None, prebooking(order_id="ORD-1"), at(NOW)))
    order = confirmed_order("A")
    used = stored(decide(order, redeem(order), at(NOW)))
    usage = stored(decide(None, walk_in(), at(NOW, input_id="w", entitlement=EntitlementCheck.CONSUMED)))

    cases = {
        RejectionCode.INVALID_STATE: [
            decide(pending, redeem(pending), at(NOW)),
            decide(used, redeem(used), at(NOW)),
            decide(usage, redeem(usage), at(NOW)),
        ],
        RejectionCode.UNKNOWN_SERVICE: [decide(order, redeem(order, service_ids=["nope"]), at(NOW))],
    }
    for code, decisions in cases.items():
        for decision in decisions:
            assert decision.rejection is not None and decision.rejection.code is code


# The transition table


def test_a_status_change_the_table_does_not_list_is_refused() -> None:
    """An illegal transition is a bug: change_status raises instead of emitting the event."""
    usage = stored(decide(None, walk_in(), at(NOW, input_id="w", entitlement=EntitlementCheck.CONSUMED)))
    order = confirmed_order("A")

    with pytest.raises(IllegalTransition, match="Used -> Pending"):
        change_status(usage, OrderStatus.PENDING, None, NOW)
    with pytest.raises(IllegalTransition, match="Confirmed -> Failed"):
        change_status(order, OrderStatus.FAILED, None, NOW)
    assert (usage.sequence, order.status) == (1, OrderStatus.CONFIRMED), "nothing changed"
