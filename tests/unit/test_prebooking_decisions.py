"""The prebooking state machine, decided without I/O."""

from datetime import UTC, datetime, timedelta

from contracts.commands import CancelOrder
from contracts.resources import ReservationConfirmed, ReservationFailed, ReservationWaitlisted
from contracts.statuses import DeliveryStatus, OneOrderStatus, OrderStatus, RejectionCode
from service.domain.decide import ConfirmationDeadline, Context, WaitlistDeadline, decide
from service.domain.local_effects import ScheduleWaitlistTimeout
from service.domain.order import Order, ReservationState
from service.domain.policy import Policy
from service.domain.reasons import Anomaly
from service.domain.resource_requests import ReleaseRequest, ReserveRequest
from testkit.factories import prebooking

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CONTEXT = Context(NOW, Policy())


def created(*resources: str) -> Order:
    decision = decide(None, prebooking(*resources, order_id="ORD-1"), CONTEXT)
    assert decision.order is not None
    return decision.order


def confirm(order: Order, item: str) -> ReservationConfirmed:
    return ReservationConfirmed(
        reply_id=f"r-{item}", order_id=order.order_id, reservation_id=f"client-a/ORD-1/{item}"
    )


def refuse(order: Order, item: str) -> ReservationFailed:
    return ReservationFailed(
        reply_id=f"f-{item}",
        order_id=order.order_id,
        reservation_id=f"client-a/ORD-1/{item}",
        reason_code="SOLD_OUT",
        reason="-",
    )


def test_create_stores_a_pending_order_and_requests_each_reservation() -> None:
    """A prebooking creates a Pending order (event #1) and one reserve request per item."""
    decision = decide(None, prebooking("A", "B", order_id="ORD-1"), CONTEXT)

    assert decision.order is not None and decision.order.status is OrderStatus.PENDING
    [event] = decision.events
    assert (event.sequence, event.status, event.previous_status) == (1, OrderStatus.PENDING, None)
    assert [r.reservation_id for r in decision.requests if isinstance(r, ReserveRequest)] == [
        "client-a/ORD-1/ITEM-1",
        "client-a/ORD-1/ITEM-2",
    ]


def test_create_with_a_used_order_id_is_rejected() -> None:
    """A prebooking for an existing order id is rejected ORDER_ALREADY_EXISTS and changes nothing."""
    decision = decide(created("A"), prebooking("A", order_id="ORD-1"), CONTEXT)

    assert decision.order is None and not decision.events
    assert decision.rejection is not None and decision.rejection.code is RejectionCode.ORDER_ALREADY_EXISTS


def test_order_is_confirmed_only_when_every_item_is() -> None:
    """The order stays Pending until its last item is confirmed, then emits Confirmed (#2)."""
    order = created("A", "B")

    first = decide(order, confirm(order, "ITEM-1"), CONTEXT)
    assert first.order is not None and not first.events
    assert first.order.status is OrderStatus.PENDING
    second = decide(first.order, confirm(order, "ITEM-2"), CONTEXT)

    assert second.order is not None
    [event] = second.events
    assert (event.sequence, event.status, event.previous_status) == (
        2,
        OrderStatus.CONFIRMED,
        OrderStatus.PENDING,
    )


def test_a_refusal_fails_the_order_and_releases_confirmed_items() -> None:
    """One refused item fails and closes the order, and releases the items already confirmed."""
    order = created("A", "B")
    after_first = decide(order, confirm(order, "ITEM-1"), CONTEXT).order
    assert after_first is not None

    decision = decide(after_first, refuse(order, "ITEM-2"), CONTEXT)

    assert decision.order is not None
    [event] = decision.events
    assert (event.status, event.reason) == (OrderStatus.FAILED, "SOLD_OUT")
    assert event.order.status is OneOrderStatus.CLOSED
    assert [(r.reservation_id, r.reason) for r in decision.requests if isinstance(r, ReleaseRequest)] == [
        ("client-a/ORD-1/ITEM-1", "ORDER_FAILED")
    ]


def test_a_confirmation_after_failure_is_compensated_with_a_release() -> None:
    """A confirmation after the order failed is an anomaly, released once, with no status change."""
    order = created("A", "B")
    failed = decide(order, refuse(order, "ITEM-2"), CONTEXT).order
    assert failed is not None

    late = decide(failed, confirm(order, "ITEM-1"), CONTEXT)

    assert late.anomaly == "LATE_CONFIRMATION" and not late.events
    assert [type(r) for r in late.requests] == [ReleaseRequest]
    assert late.order is not None and late.order.status is OrderStatus.FAILED
    assert late.order.items[0].reservation is ReservationState.RELEASED
    assert decide(late.order, confirm(order, "ITEM-1"), CONTEXT).requests == [], "released once, not again"


def test_replies_for_unknown_orders_and_reservations_are_anomalies() -> None:
    """Replies for an unknown order or reservation are recorded as anomalies."""
    order = created("A")

    assert decide(None, confirm(order, "ITEM-1"), CONTEXT).anomaly == "UNKNOWN_ORDER"
    assert decide(order, confirm(order, "ITEM-9"), CONTEXT).anomaly == "UNKNOWN_RESERVATION"


def test_a_second_reply_for_a_settled_reservation_changes_nothing() -> None:
    """A second reply for a settled reservation changes no order and emits nothing (an anomaly)."""
    order = created("A", "B")
    confirmed = decide(order, confirm(order, "ITEM-1"), CONTEXT).order
    assert confirmed is not None

    again = decide(confirmed, refuse(order, "ITEM-1"), CONTEXT)

    assert again.order is None and not again.events
    assert again.anomaly == "REPLY_FOR_CONFIRMED_RESERVATION"


def test_replies_for_answered_reservations_are_named_after_the_reservation_state() -> None:
    """The documented REPLY_FOR_<STATE>_RESERVATION values, one per state a reply can meet."""
    order = created("A", "B")
    failed = decide(order, refuse(order, "ITEM-1"), CONTEXT).order
    half = decide(order, confirm(order, "ITEM-1"), CONTEXT).order
    assert failed is not None and half is not None
    confirmed = decide(half, confirm(order, "ITEM-2"), CONTEXT).order
    assert confirmed is not None
    cancel = CancelOrder(command_id="c", client_id=order.client_id, order_id=order.order_id)
    cancelled = decide(confirmed, cancel, CONTEXT).order
    assert cancelled is not None

    refused_again = refuse(order, "ITEM-1").model_copy(update={"reply_id": "f-again"})
    assert decide(failed, refused_again, CONTEXT).anomaly == "REPLY_FOR_FAILED_RESERVATION"
    assert decide(cancelled, refuse(order, "ITEM-2"), CONTEXT).anomaly == "REPLY_FOR_RELEASED_RESERVATION"


def test_commands_for_another_clients_order_look_like_missing_orders() -> None:
    """A command naming another client's order is rejected ORDER_NOT_FOUND, revealing nothing."""
    order = created("A")
    command = CancelOrder(command_id="c", client_id="intruder", order_id=order.order_id)

    decision = decide(order, command, CONTEXT)

    assert decision.rejection is not None and decision.rejection.code is RejectionCode.ORDER_NOT_FOUND
    assert decision.order is None


def test_refused_services_are_unable_to_deliver_and_their_siblings_removed() -> None:
    """The refused item's services are UNABLE_TO_DELIVER, its withdrawn sibling's REMOVED: none holds value,
    every item is CANCELLED (withdrawn in one transaction) and the view CLOSED."""
    order = created("A", "B")

    failed = decide(order, refuse(order, "ITEM-2"), CONTEXT)

    assert failed.order is not None
    delivery = {i.order_item_id: {s.delivery_status for s in i.services} for i in failed.order.items}
    assert delivery == {"ITEM-1": {DeliveryStatus.REMOVED}, "ITEM-2": {DeliveryStatus.UNABLE_TO_DELIVER}}
    [event] = failed.events
    assert event.order.status is OneOrderStatus.CLOSED
    assert [i.status for i in event.order.items] == ["CANCELLED", "CANCELLED"]


def test_a_timeout_leaves_the_unanswered_items_unable_to_deliver() -> None:
    """On the deadline the items the resources never answered are UNABLE_TO_DELIVER; a confirmed one that
    is released because of them is REMOVED."""
    order = created("A", "B")
    confirmed = decide(order, confirm(order, "ITEM-1"), CONTEXT).order
    assert confirmed is not None

    failed = decide(confirmed, ConfirmationDeadline(order.order_id), CONTEXT)

    assert failed.order is not None
    delivery = {i.order_item_id: {s.delivery_status for s in i.services} for i in failed.order.items}
    assert delivery == {"ITEM-1": {DeliveryStatus.REMOVED}, "ITEM-2": {DeliveryStatus.UNABLE_TO_DELIVER}}


def waitlist(order: Order, item: str, reply_id: str = "") -> ReservationWaitlisted:
    return ReservationWaitlisted(
        reply_id=reply_id or f"w-{item}", order_id=order.order_id, reservation_id=f"client-a/ORD-1/{item}"
    )


def test_a_waitlisted_item_keeps_the_order_pending_and_moves_its_deadline() -> None:
    """Pending → Pending (WAITLISTED), the waitlist deadline counted from creation; the confirmation
    deadline then changes nothing, the waitlist one fails the order with WAITLIST_TIMEOUT."""
    policy = Policy(confirmation_timeout=timedelta(minutes=2), waitlist_timeout=timedelta(hours=2))
    order = created("A", "B")
    context = Context(NOW + timedelta(seconds=30), policy)

    decision = decide(order, waitlist(order, "ITEM-2"), context)

    [event] = decision.events
    assert (event.status, event.previous_status, event.reason) == (5, 5, "WAITLISTED")
    assert decision.effects == [
        ScheduleWaitlistTimeout(client_id="client-a", order_id="ORD-1", deadline=NOW + timedelta(hours=2))
    ]
    waitlisted = decision.order
    assert waitlisted is not None
    assert decide(waitlisted, ConfirmationDeadline("ORD-1"), Context(NOW, policy)).is_no_change
    failed = decide(waitlisted, WaitlistDeadline("ORD-1"), Context(NOW, policy))
    [timeout] = failed.events
    assert (timeout.status, timeout.reason) == (OrderStatus.FAILED, "WAITLIST_TIMEOUT")
    assert failed.order is not None
    assert {s.delivery_status for i in failed.order.items for s in i.services} == {
        DeliveryStatus.UNABLE_TO_DELIVER
    }


def test_a_waitlist_no_longer_than_the_confirmation_timeout_extends_nothing() -> None:
    """A waitlist timeout not above the confirmation timeout: the confirmation deadline still fails it."""
    policy = Policy(confirmation_timeout=timedelta(minutes=2), waitlist_timeout=timedelta(minutes=2))
    order = created("A")
    decision = decide(order, waitlist(order, "ITEM-1"), Context(NOW, policy))
    assert decision.effects == []
    assert decision.order is not None

    failed = decide(decision.order, ConfirmationDeadline("ORD-1"), Context(NOW, policy))

    assert [(e.status, e.reason) for e in failed.events] == [(OrderStatus.FAILED, "CONFIRMATION_TIMEOUT")]


def test_a_waitlisted_item_is_settled_by_confirmed_or_failed() -> None:
    """A later `confirmed` confirms the waitlisted item (and the order); a later `failed` fails the order."""
    order = created("A")
    waitlisted = decide(order, waitlist(order, "ITEM-1"), CONTEXT).order
    assert waitlisted is not None

    confirmed = decide(waitlisted, confirm(waitlisted, "ITEM-1"), CONTEXT)
    refused = decide(waitlisted, refuse(waitlisted, "ITEM-1"), CONTEXT)

    assert [e.status for e in confirmed.events] == [OrderStatus.CONFIRMED]
    assert confirmed.order is not None
    assert {s.status for s in confirmed.order.items[0].services} == {"CONFIRMED"}
    assert [(e.status, e.reason) for e in refused.events] == [(OrderStatus.FAILED, "SOLD_OUT")]


def test_waitlisted_replies_that_do_not_fit_are_anomalies() -> None:
    """A second `waitlisted`, one for a withdrawn reservation, and one after a confirmation change nothing."""
    order = created("A")
    waitlisted = decide(order, waitlist(order, "ITEM-1"), CONTEXT).order
    assert waitlisted is not None
    cancelled = decide(
        waitlisted, CancelOrder(command_id="c", client_id="client-a", order_id="ORD-1"), CONTEXT
    )
    assert [r.type for r in cancelled.requests] == ["release"], "a waitlisted reservation is released"
    assert cancelled.order is not None
    confirmed = decide(order, confirm(order, "ITEM-1"), CONTEXT).order
    assert confirmed is not None

    assert decide(waitlisted, waitlist(order, "ITEM-1", "w2"), CONTEXT).anomaly == (
        Anomaly.REPLY_FOR_WAITLISTED_RESERVATION
    )
    assert decide(cancelled.order, waitlist(order, "ITEM-1", "w2"), CONTEXT).anomaly == (
        Anomaly.LATE_WAITLISTING
    )
    assert decide(confirmed, waitlist(order, "ITEM-1", "w2"), CONTEXT).anomaly == (
        Anomaly.REPLY_FOR_CONFIRMED_RESERVATION
    )
