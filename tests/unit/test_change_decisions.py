"""Order changes (reschedule), decided without I/O: the services move with their ids, or nothing moves."""

from datetime import date, timedelta

from contracts.commands import ChangeOrder
from contracts.resources import ReservationConfirmed, ReservationFailed
from contracts.statuses import OrderStatus, RejectionCode
from service.consumers.inbound import change_deadline_input, no_show_input
from service.domain.decide import ChangeDeadline, NoShowDeadline, decide
from service.domain.local_effects import ScheduleChangeTimeout, ScheduleNoShow
from service.domain.order import Order
from service.domain.reasons import Anomaly
from service.domain.resource_requests import ReleaseRequest, ReserveRequest
from testkit.factories import SERVICE_DATE, prebooking
from tests.unit.test_lifecycle_decisions import NOW, POLICY, at, confirmed_order, redeem, stored
from tests.unit.test_suspension_decisions import lift, suspend

NEW_RESERVATION = "client-a/ORD-1/CHANGE-1"


def change(order: Order, **kwargs: object) -> ChangeOrder:
    fields: dict[str, object] = {"order_item_id": "ITEM-1", "service_date": date(2026, 12, 27)} | kwargs
    return ChangeOrder(command_id="change", client_id=order.client_id, order_id=order.order_id, **fields)


def confirmed(reservation_id: str = NEW_RESERVATION, reply_id: str = "rc") -> ReservationConfirmed:
    return ReservationConfirmed(reply_id=reply_id, order_id="ORD-1", reservation_id=reservation_id)


def failed(reservation_id: str = NEW_RESERVATION) -> ReservationFailed:
    return ReservationFailed(
        reply_id="rf", order_id="ORD-1", reservation_id=reservation_id, reason_code="FULL", reason="full"
    )


def requested(order: Order, **kwargs: object) -> Order:
    return stored(decide(order, change(order, **kwargs), at(NOW)))


def test_a_confirmed_change_moves_the_services_with_their_ids_and_releases_the_old_reservation() -> None:
    order = confirmed_order("A", passengers=2)

    asked = decide(order, change(order), at(NOW))

    [event] = asked.events
    assert (event.status, event.reason) == (OrderStatus.CONFIRMED, "CHANGE_REQUESTED")
    [reserve] = asked.requests
    assert isinstance(reserve, ReserveRequest) and reserve.reservation_id == NEW_RESERVATION
    assert reserve.service_date == "2026-12-27"
    assert [e.deadline for e in asked.effects if isinstance(e, ScheduleChangeTimeout)] == [
        NOW + POLICY.confirmation_timeout
    ]
    pending = stored(asked)
    assert pending.items == order.items, "the passenger holds the original item meanwhile"
    assert [i.order_item_id for i in event.order.items] == ["ITEM-1"]

    moved = decide(pending, confirmed(), at(NOW))

    [event] = moved.events
    assert (event.status, event.reason) == (OrderStatus.CONFIRMED, "ORDER_CHANGED")
    [release] = moved.requests
    assert isinstance(release, ReleaseRequest) and release.reservation_id == "client-a/ORD-1/ITEM-1"
    assert release.reason == "ORDER_CHANGED"
    after = stored(moved)
    old, new = after.items
    assert [s.status for s in old.services] == ["TRANSFERRED", "TRANSFERRED"]
    assert [s.service_id for s in new.services] == ["ITEM-1-PAX-1", "ITEM-1-PAX-2"], "ServiceIDs unchanged"
    assert [s.delivery_status for s in new.services] == ["READY_TO_DELIVER"] * 2
    assert [i.order_item_id for i in event.order.items] == ["CHANGE-1"], "the retrieve rule: ACTIVE only"
    [no_show] = [e for e in moved.effects if isinstance(e, ScheduleNoShow)]
    assert no_show.deadline == POLICY.no_show_at("A", "2026-12-27")
    assert (
        stored(decide(after, redeem(after, service_ids=["ITEM-1-PAX-1"]), at(NOW))).status is OrderStatus.USED
    )


def test_a_refused_or_timed_out_change_leaves_the_order_as_it_was() -> None:
    order = confirmed_order("A")
    pending = requested(order)

    refused = decide(pending, failed(), at(NOW))

    assert [e.reason for e in refused.events] == ["CHANGE_REFUSED"] and not refused.requests
    assert stored(refused).items == order.items and stored(refused).status is OrderStatus.CONFIRMED

    early = decide(pending, ChangeDeadline("ORD-1"), at(NOW))
    assert early.is_no_change, "a firing before the change's deadline changes nothing"
    timed_out = decide(pending, ChangeDeadline("ORD-1"), at(NOW + timedelta(minutes=5)))

    assert [e.reason for e in timed_out.events] == ["CHANGE_TIMEOUT"]
    [release] = timed_out.requests
    assert isinstance(release, ReleaseRequest) and release.reservation_id == NEW_RESERVATION
    assert stored(timed_out).items == order.items

    late = decide(stored(timed_out), confirmed(), at(NOW + timedelta(minutes=6)))

    assert late.anomaly is Anomaly.LATE_CONFIRMATION and not late.events
    assert [r.reservation_id for r in late.requests] == [NEW_RESERVATION], "late capacity is given back"
    again = decide(stored(late), confirmed(reply_id="rc-2"), at(NOW))
    assert again.anomaly is Anomaly.REPLY_FOR_RELEASED_RESERVATION and not again.requests


def test_delivered_services_cannot_move_and_changes_come_one_at_a_time() -> None:
    order = confirmed_order("A", "B")
    used = stored(decide(order, redeem(order, service_ids=["ITEM-1-PAX-1"]), at(NOW)))

    refusal = decide(used, change(used), at(NOW)).rejection
    assert refusal is not None and refusal.code is RejectionCode.SERVICES_DELIVERED

    pending = requested(used, order_item_id="ITEM-2")
    second = decide(pending, change(pending, order_item_id="ITEM-2", resource_id="C"), at(NOW)).rejection
    assert second is not None and second.code is RejectionCode.CHANGE_IN_PROGRESS
    same = decide(order, change(order, service_date=SERVICE_DATE), at(NOW)).rejection
    assert same is not None and same.code is RejectionCode.INVALID_COMMAND


def test_an_item_with_a_removed_service_cannot_move() -> None:
    """Found by the lifecycle properties: the change was accepted, its new item held the removed service
    again, and its confirmation could only be abandoned."""
    order = confirmed_order("A", passengers=2)
    suspended = stored(decide(order, suspend(order, service_ids=["ITEM-1-PAX-1"]), at(NOW)))
    removed = stored(decide(suspended, lift(suspended, "REMOVE"), at(NOW)))
    assert [s.delivery_status for s in removed.items[0].services] == ["REMOVED", "READY_TO_DELIVER"]

    decision = decide(removed, change(removed), at(NOW))
    assert decision.rejection is not None and decision.rejection.code is RejectionCode.INVALID_STATE
    assert decision.order is None and not decision.requests


def test_a_change_whose_item_was_used_meanwhile_is_abandoned_and_released() -> None:
    order = confirmed_order("A")
    pending = requested(order)
    used = stored(decide(pending, redeem(pending), at(NOW)))

    abandoned = decide(used, confirmed(), at(NOW))

    assert [e.reason for e in abandoned.events] == ["CHANGE_ABANDONED"]
    assert [r.reservation_id for r in abandoned.requests] == [NEW_RESERVATION]
    assert stored(abandoned).items == used.items


def test_a_pending_change_is_withdrawn_with_the_order_that_fails() -> None:
    order = stored(decide(None, prebooking("A", "B", order_id="ORD-1"), at(NOW)))
    half = stored(decide(order, confirmed("client-a/ORD-1/ITEM-1", "c1"), at(NOW)))
    pending = requested(half)

    failure = decide(pending, failed("client-a/ORD-1/ITEM-2"), at(NOW))

    assert stored(failure).status is OrderStatus.FAILED
    released = {r.reservation_id for r in failure.requests}
    assert {"client-a/ORD-1/ITEM-1", NEW_RESERVATION} <= released
    assert stored(failure).pending_change is None


def test_the_no_show_of_a_moved_date_fires_on_the_new_deadline_only() -> None:
    """The old deadline's firing is stale (the date moved later): nothing; the new one declares it."""
    order = confirmed_order("A")
    moved = stored(decide(requested(order), confirmed(), at(NOW)))
    old_due = POLICY.no_show_at("A", "2026-12-24")
    new_due = POLICY.no_show_at("A", "2026-12-27")

    assert decide(moved, NoShowDeadline("ORD-1"), at(old_due)).is_no_change
    declared = decide(moved, NoShowDeadline("ORD-1"), at(new_due))
    assert [e.reason for e in declared.events] == ["NO_SHOW"]


def test_the_change_deadline_has_the_timers_precision() -> None:
    """Redis scores are whole milliseconds: a change requested at .000700 s fires at the millisecond its
    timer is due, not 0.7 ms later (a firing then would be ignored and the timer forgotten)."""
    order = confirmed_order("A")
    asked = decide(order, change(order), at(NOW + timedelta(microseconds=700)))
    [timer] = [e for e in asked.effects if isinstance(e, ScheduleChangeTimeout)]
    assert timer.deadline.microsecond == 0

    fired = decide(stored(asked), ChangeDeadline("ORD-1"), at(timer.deadline))

    assert [e.reason for e in fired.events] == ["CHANGE_TIMEOUT"]


def test_dated_deadlines_fire_as_inputs_of_their_own() -> None:
    """A moved no-show deadline and each change deadline are inputs of their own (never a replay of an
    earlier one); a no-show member set before the dated layout still fires as it did."""
    assert no_show_input("client-a", "ORD-1/1798243200000").input_id == "timer/no_show/ORD-1/1798243200000"
    assert no_show_input("client-a", "ORD-1/1798243200000").order_id == "ORD-1"
    assert no_show_input("client-a", "ORD-1").input_id == "timer/no_show/ORD-1"
    first, second = (change_deadline_input("client-a", f"ORD-1/{ms}") for ms in (1, 2))
    assert first.input_id != second.input_id and first.order_id == second.order_id == "ORD-1"
