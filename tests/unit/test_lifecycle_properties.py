"""Property tests: any sequence of commands, replies and deadlines keeps an order legal and consistent."""

from datetime import UTC, date, datetime, timedelta

from hypothesis import event as count_event
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.commands import CancelOrder, ChangeOrder, LiftSuspension, RedeemOrder, SuspendServices
from contracts.resources import ReservationConfirmed, ReservationFailed, ReservationWaitlisted
from contracts.statuses import OneOrderStatus, OrderStatus, OrderType
from service.domain.decide import (
    ChangeDeadline,
    ConfirmationDeadline,
    Context,
    Input,
    NoShowDeadline,
    WaitlistDeadline,
    decide,
)
from service.domain.local_effects import EntitlementCheck, RefundEntitlement, ScheduleNoShow
from service.domain.one_order import order_status
from service.domain.order import Order, ReservationState
from service.domain.outcome import Decision
from service.domain.policy import Policy
from service.domain.resource_requests import ReleaseRequest
from service.domain.transitions import TRANSITIONS
from testkit.factories import prebooking, walk_in
from tests.unit.test_resource_requests import check_sent_as_the_contract
from tests.unit.test_status_events import check_published_as_the_contract

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = Policy(confirmation_timeout=timedelta(minutes=2), walk_in_cancellation_window=timedelta(minutes=30))
S = OrderStatus

ITEMS = ["ITEM-1", "ITEM-2", "ITEM-3", "ITEM-9"]  # ITEM-9 never exists
SERVICES = [f"{i}-PAX-{p}" for i in ITEMS for p in (1, 2)]  # a moved service keeps its id
CHANGED = ["CHANGE-1", "CHANGE-2", "CHANGE-3", "CHANGE-4", "CHANGE-5"]  # the items changes create

actions = st.lists(
    st.one_of(
        st.tuples(st.just("confirm"), st.sampled_from(ITEMS + CHANGED), st.integers(0, 2)),
        st.tuples(st.just("fail"), st.sampled_from(ITEMS + CHANGED), st.integers(0, 2)),
        st.tuples(st.just("waitlisted"), st.sampled_from(ITEMS + CHANGED), st.integers(0, 2)),
        # A repeated (item, variant) is the same command_id again: a duplicate the processor drops.
        st.tuples(st.just("change"), st.sampled_from(ITEMS + CHANGED[:2]), st.integers(-3, 3)),
        st.tuples(st.just("change"), st.sampled_from(ITEMS[:2]), st.integers(-1, 1)),
        # Replies to the first changes' reservations, often enough to reach them.
        st.tuples(st.sampled_from(["confirm", "fail"]), st.sampled_from(CHANGED[:2]), st.integers(0, 1)),
        st.tuples(st.just("confirm"), st.sampled_from(CHANGED[:2]), st.integers(0, 1)),
        st.tuples(st.just("change_deadline"), st.none(), st.none()),
        st.tuples(st.just("travel"), st.integers(1, 40), st.none()),
        st.tuples(st.just("deadline"), st.none(), st.none()),
        st.tuples(st.just("waitlist_deadline"), st.none(), st.none()),
        st.tuples(st.just("no_show_deadline"), st.none(), st.none()),
        st.tuples(
            st.just("cancel"), st.lists(st.sampled_from(ITEMS), max_size=2, unique=True), st.booleans()
        ),
        st.tuples(st.just("redeem"), st.lists(st.sampled_from(SERVICES), max_size=2, unique=True), st.none()),
        st.tuples(st.just("create"), st.none(), st.none()),
        st.tuples(
            st.just("suspend"), st.lists(st.sampled_from(SERVICES), max_size=2, unique=True), st.none()
        ),
        st.tuples(
            st.just("lift"),
            st.lists(st.sampled_from(SERVICES), max_size=2, unique=True),
            st.sampled_from(["REVERT", "REMOVE"]),
        ),
        st.tuples(st.just("wait"), st.integers(1, 200), st.none()),
    ),
    max_size=30,
)


DEADLINES: dict[str, Input] = {
    "deadline": ConfirmationDeadline("ORD-1"),
    "waitlist_deadline": WaitlistDeadline("ORD-1"),
    "no_show_deadline": NoShowDeadline("ORD-1"),
}


def to_input(action: tuple[str, object, object], n: int, kind: OrderType) -> Input | None:
    name, arg, extra = action
    if name in ("confirm", "fail", "waitlisted"):
        reply_id = f"{name}-{arg}-{extra}"  # a repeated reply_id is a duplicate delivery
        reservation = f"client-a/ORD-1/{arg}"
        if name == "confirm":
            return ReservationConfirmed(reply_id=reply_id, order_id="ORD-1", reservation_id=reservation)
        if name == "waitlisted":
            return ReservationWaitlisted(reply_id=reply_id, order_id="ORD-1", reservation_id=reservation)
        return ReservationFailed(
            reply_id=reply_id, order_id="ORD-1", reservation_id=reservation, reason_code="X", reason="x"
        )
    if name in DEADLINES:
        return DEADLINES[name]
    if name.startswith("change"):
        return change_input(arg, extra)
    if name == "cancel":
        staff = "RESOURCE_STAFF" if extra else "CLIENT"
        return CancelOrder(
            command_id=f"c{n}",
            client_id="client-a",
            order_id="ORD-1",
            order_item_ids=arg or None,
            initiated_by=staff,
        )
    if name == "redeem":
        return RedeemOrder(
            command_id=f"r{n}", client_id="client-a", order_id="ORD-1", service_ids=arg or None
        )
    if name == "suspend":
        return SuspendServices(
            command_id=f"s{n}", client_id="client-a", order_id="ORD-1", service_ids=arg or None
        )
    if name == "lift":
        return LiftSuspension(
            command_id=f"l{n}",
            client_id="client-a",
            order_id="ORD-1",
            service_ids=arg or None,
            resolution=extra,
        )
    if name == "create":
        if kind is OrderType.WALK_IN:
            return walk_in(order_id="ORD-1", passengers=2)
        return prebooking("A", "B", "C", order_id="ORD-1", passengers=2)
    return None


def change_input(arg: object, extra: object) -> Input:
    """`change_order` of item `arg` by `extra` days (0: same date, another resource), or its deadline."""
    if arg is None:
        return ChangeDeadline("ORD-1")
    shift = int(extra)  # type: ignore[call-overload]
    return ChangeOrder(
        command_id=f"ch-{arg}-{shift}",
        client_id="client-a",
        order_id="ORD-1",
        order_item_id=str(arg),
        service_date=date(2026, 12, 24) + timedelta(days=shift) if shift else None,
        resource_id="R-MOVED" if shift <= 0 else None,
    )


def check_consistent(order: Order) -> None:
    """The operator status and the ONE Order view agree."""
    one_order = order_status(order)
    live = [i for i in order.items if i.cancelled_at_sequence is None]
    if order.status is S.PENDING:
        assert one_order is OneOrderStatus.OPENED
        assert any(i.reservation is not ReservationState.CONFIRMED for i in live)
    elif order.status is S.CONFIRMED:
        no_show = any(s.delivery_status == "NOT_CLAIMED" for i in order.items for s in i.services)
        assert one_order is OneOrderStatus.OPENED or no_show, "Confirmed and CLOSED only after a no-show"
        assert live and all(i.reservation is ReservationState.CONFIRMED for i in live)
    elif order.status is S.USED:
        # Delivered, or removed after a suspension of the delivered usage (a REMOVE keeps what it was).
        assert any(
            s.delivery_status == "DELIVERED" or s.suspended_from == "DELIVERED"
            for i in order.items
            for s in i.services
        )
    else:
        assert one_order is OneOrderStatus.CLOSED, "a cancelled or failed order holds no value"
    for item in order.items:
        waitlisted = {s.status == "WAITLISTED" for s in item.services}
        assert waitlisted <= {item.reservation is ReservationState.WAITLISTED}, "WAITLISTED while waitlisted"
    for service in (s for i in order.items for s in i.services):
        if service.delivery_status == "SUSPENDED":
            assert service.suspended_from in ("READY_TO_DELIVER", "DELIVERED")
    live_ids = [s.service_id for i in live for s in i.services]
    assert len(live_ids) == len(set(live_ids)), "a moved service is live in one item only"
    pending = [c for c in order.changes if c.item.reservation in (ReservationState.REQUESTED, "WAITLISTED")]
    assert len(pending) <= 1, "one change at a time"
    for service in (s for i in order.items for s in i.services if s.status == "TRANSFERRED"):
        assert service.delivery_status == "REMOVED", "a transferred service holds its value elsewhere"
        assert service.service_id in live_ids or order.status is not S.CONFIRMED or not live
    unable = any(s.delivery_status == "UNABLE_TO_DELIVER" for i in order.items for s in i.services)
    assert unable == (order.status is S.FAILED), "a refusal or timeout shows as UNABLE_TO_DELIVER, only then"


def check_step(previous: Order, message: Input, decision: Decision, order: Order) -> None:
    """One applied input: gapless sequences, legal transitions, and the rules of the input's own flow."""
    assert order.sequence == previous.sequence + len(decision.events)
    status = previous.status
    for offset, event in enumerate(decision.events, start=1):
        assert event.sequence == previous.sequence + offset
        assert event.previous_status is status
        assert (status, event.status) in TRANSITIONS[order.order_type]
        status = event.status
    assert status is order.status
    if previous.status in (S.CANCELLED, S.FAILED):
        assert order.status is previous.status, "terminal statuses stay"
    if isinstance(message, ConfirmationDeadline) and any(
        i.reservation is ReservationState.WAITLISTED for i in previous.items
    ):
        assert order.status is S.PENDING, "a waitlisted item defers the deadline to the waitlist's"
    if isinstance(message, ReservationWaitlisted) and previous.item_by_reservation(message.reservation_id):
        assert order.status is S.PENDING and decision.events[0].reason == "WAITLISTED"
    now_delivery = {s.service_id: s.delivery_status for i in order.items for s in i.services}
    before_delivery = {s.service_id: s.delivery_status for i in previous.items for s in i.services}
    for service_id, after in now_delivery.items():
        if before_delivery[service_id] == "NOT_CLAIMED":
            assert after == "NOT_CLAIMED", "a no-show is final"
        elif after == "NOT_CLAIMED":
            assert isinstance(message, NoShowDeadline), "only the no-show deadline makes a no-show"
    if isinstance(message, NoShowDeadline):
        assert decision.events[0].reason == "NO_SHOW" and order.status is previous.status
        live = [s for i in order.items if i.cancelled_at_sequence is None for s in i.services]
        assert all(s.delivery_status != "READY_TO_DELIVER" for s in live)
    reasons = {e.reason for e in decision.events}
    schedules = [e for e in decision.effects if isinstance(e, ScheduleNoShow)]
    if not (previous.status is S.PENDING and order.status is S.CONFIRMED):
        assert not schedules or "ORDER_CHANGED" in reasons, "a no-show deadline on confirmation or a move"
    else:
        assert schedules
    check_change_step(previous, message, decision, order, reasons)
    for service in (s for i in previous.items for s in i.services if s.delivery_status == "SUSPENDED"):
        after = now_delivery[service.service_id]
        if after != "SUSPENDED":  # the seed: only back to the status before, or REMOVED; only by a lift
            assert isinstance(message, LiftSuspension)
            assert after in (service.suspended_from, "REMOVED")


def check_change_step(
    previous: Order, message: Input, decision: Decision, order: Order, reasons: set[str | None]
) -> None:
    """A change moves the services with their ids, or leaves the order's items as they were."""
    if reasons & {"CHANGE_REQUESTED", "CHANGE_REFUSED", "CHANGE_TIMEOUT", "CHANGE_ABANDONED"}:
        assert order.items == previous.items, "until confirmed, or when it fails, the order stays as it was"
    if isinstance(message, ChangeOrder) and "CHANGE_REQUESTED" in reasons:
        moved = next(i for i in previous.items if i.order_item_id == message.order_item_id)
        assert all(s.delivery_status == "READY_TO_DELIVER" for s in moved.services), "only unused ones move"
        assert [r.reservation_id for r in decision.requests] == [order.changes[-1].item.reservation_id]
    if "ORDER_CHANGED" in reasons:
        new = order.items[-1]
        old = next(i for i in order.items if i.order_item_id == order.changes[-1].from_item_id)
        assert [s.service_id for s in new.services] == [s.service_id for s in old.services], "ids kept"
        assert {s.status for s in old.services} == {"TRANSFERRED"}
        assert {s.delivery_status for s in new.services} == {"READY_TO_DELIVER"}
        released = [r.reservation_id for r in decision.requests if isinstance(r, ReleaseRequest)]
        assert released == [old.reservation_id], "the old capacity goes back once the new one is held"
    if order.status in (S.CANCELLED, S.FAILED):
        assert order.pending_change is None, "an ended order awaits no change"


CONFIRMED_FIRST = [("confirm", item, 0) for item in ITEMS[:3]]
"""A head that confirms the prebooking, so that the later flows (changes, no-shows) are reached often."""


@settings(max_examples=1500, deadline=None)
@given(kind=st.sampled_from(OrderType), head=st.sampled_from([[], CONFIRMED_FIRST]), body=actions)
def test_random_inputs_never_make_an_illegal_or_inconsistent_order(
    kind: OrderType, head: list[tuple[str, object, object]], body: list[tuple[str, object, object]]
) -> None:
    """Whatever arrives, in whatever order: legal transitions, gapless sequences, consistent views, inputs
    left untouched, every capacity the resource confirmed for a dead item is released, and refunds happen
    at most once."""
    first = (
        walk_in(order_id="ORD-1", passengers=2)
        if kind is OrderType.WALK_IN
        else prebooking("A", "B", "C", order_id="ORD-1", passengers=2)
    )
    now = START
    order = decide(None, first, Context(now, POLICY, "create", EntitlementCheck.CONSUMED)).order
    assert order is not None
    seen_inputs: set[str] = set()
    confirmed_by_resource: set[str] = set()
    released: set[str] = set()
    refunds: list[str] = []
    for n, action in enumerate(head + body):
        if action[0] == "wait":
            now += timedelta(seconds=int(action[1]))  # type: ignore[call-overload]
            continue
        if action[0] == "travel":  # far enough, in a few steps, for service dates to pass
            now += timedelta(days=int(action[1]))  # type: ignore[call-overload]
            continue
        message = to_input(action, n, kind)
        assert message is not None
        input_id = str(getattr(message, "reply_id", None) or getattr(message, "command_id", action[0]))
        if input_id in seen_inputs and not input_id.endswith("deadline"):
            continue  # the processor drops exact duplicates before the domain sees them
        seen_inputs.add(input_id)
        before = order.to_json()
        decision = decide(order, message, Context(now, POLICY, input_id, EntitlementCheck.CONSUMED))
        assert order.to_json() == before, "a handler never changes the order it was given"
        check_published_as_the_contract(decision.events, decision.order)
        check_sent_as_the_contract(decision.requests)
        assert decision.order is not order, "a changed order is a new copy"
        if isinstance(message, ReservationConfirmed) and (
            order.item_by_reservation(message.reservation_id)
            or order.change_by_reservation(message.reservation_id)
        ):
            confirmed_by_resource.add(message.reservation_id)
        released |= {r.reservation_id for r in decision.requests if isinstance(r, ReleaseRequest)}
        refund = [e.consumption_id for e in decision.effects if isinstance(e, RefundEntitlement)]
        if order.entitlement_consumption_id in refund:  # the usage's own units, not a refused second one's
            assert not any(s.delivery_status == "SUSPENDED" for s in order.items[0].services), "no refund"
        refunds += refund
        if decision.rejection is not None:
            assert decision.order is None, "a rejected command changes nothing"
        if decision.order is None:
            assert not decision.events
            continue
        previous, order = order, decision.order
        for reason in {e.reason for e in decision.events} & {"ORDER_CHANGED", "CHANGE_REFUSED", "NO_SHOW"}:
            count_event(f"reached {reason}")
        check_step(previous, message, decision, order)
        check_consistent(order)
    dead = {
        i.reservation_id
        for i in order.items
        if i.cancelled_at_sequence is not None
        # A used item's capacity was consumed (a usage removed after review gives nothing back).
        and not any("DELIVERED" in (s.delivery_status, s.suspended_from) for s in i.services)
    }
    live = {i.reservation_id for i in order.items if i.cancelled_at_sequence is None}
    dead |= {c.item.reservation_id for c in order.changes if c.item.reservation_id not in live}
    assert (confirmed_by_resource & dead) <= released, "capacity held for a withdrawn item is given back"
    assert len(refunds) == len(set(refunds)), "each consumption is refunded at most once"
    # The usage's own units come back exactly when it was cancelled; a refused second walk-in returns its own.
    assert ("create" in refunds) == (order.order_type is OrderType.WALK_IN and order.status is S.CANCELLED)
