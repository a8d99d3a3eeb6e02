"""The operator-status state machine: every legal status change per order type, and the rules that follow
from a change whatever input caused it.

Every status event is built by `outcome.change_status`, which refuses a change this table does not list;
the command handlers ask `can_become` which statuses accept them; `decide` applies `follow_up_effects`
to every decision. docs/contract.md describes the same machine for clients.
"""

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Final

from contracts.statuses import OrderStatus, OrderType
from service.domain.local_effects import CancelConfirmationTimeout, Effect, IndexOrder, ScheduleNoShow
from service.domain.order import Order
from service.domain.policy import Policy

S = OrderStatus

StatusChange = tuple[OrderStatus | None, OrderStatus]
"""(from, to); from is None for the event that creates the order."""

TRANSITIONS: Final[Mapping[OrderType, Mapping[StatusChange, str]]] = {
    OrderType.PREBOOKING: {
        (None, S.PENDING): "CreatePrebooking: a reserve request per item, the confirmation deadline set",
        (S.PENDING, S.PENDING): (
            "CancelOrder of some items while others await a reply (ITEMS_CANCELLED), "
            "ReservationWaitlisted for an item awaiting its reply (WAITLISTED), or a change of a "
            "confirmed item: ChangeOrder (CHANGE_REQUESTED), the new item's reply or deadline "
            "(ORDER_CHANGED, CHANGE_REFUSED, CHANGE_TIMEOUT, CHANGE_ABANDONED)"
        ),
        (S.PENDING, S.CONFIRMED): (
            "ReservationConfirmed for the last live item awaiting one, "
            "or CancelOrder of the only items still awaiting one"
        ),
        (S.PENDING, S.FAILED): (
            "ReservationFailed for any item (the resource's reason_code), "
            "the confirmation deadline (CONFIRMATION_TIMEOUT), "
            "or the waitlist deadline of an order with a waitlisted item (WAITLIST_TIMEOUT)"
        ),
        (S.PENDING, S.CANCELLED): "CancelOrder of every live item (CANCELLED_BY_* or the command's reason)",
        (S.CONFIRMED, S.CONFIRMED): (
            "NoShowDeadline: the unused services NOT_CLAIMED (NO_SHOW); "
            "CancelOrder of some items (ITEMS_CANCELLED); SuspendServices (SUSPENDED_BY_*) or "
            "LiftSuspension (SUSPENSION_REVERTED, SUSPENDED_SERVICES_REMOVED) while an item is left; "
            "ChangeOrder (CHANGE_REQUESTED) and the new item's reply or deadline (ORDER_CHANGED, "
            "CHANGE_REFUSED, CHANGE_TIMEOUT, CHANGE_ABANDONED)"
        ),
        (S.CONFIRMED, S.USED): "RedeemOrder: the first services delivered",
        (S.CONFIRMED, S.CANCELLED): (
            "CancelOrder of every live item (CANCELLED_BY_* or the command's reason), or LiftSuspension "
            "REMOVE of the services of every live item (SUSPENDED_SERVICES_REMOVED)"
        ),
        (S.USED, S.USED): (
            "RedeemOrder of more services (SERVICES_REDEEMED); NoShowDeadline for the others (NO_SHOW); "
            "SuspendServices or LiftSuspension (the status stays); a change of an item nobody used "
            "(CHANGE_REQUESTED, ORDER_CHANGED, CHANGE_REFUSED, CHANGE_TIMEOUT, CHANGE_ABANDONED)"
        ),
    },
    OrderType.WALK_IN: {
        (None, S.USED): "RecordWalkIn, once the credential's entitlement units were consumed",
        (S.USED, S.USED): (
            "SuspendServices of the usage (fraud review) or LiftSuspension (REVERT, or REMOVE without refund)"
        ),
        (S.USED, S.CANCELLED): (
            "CancelOrder by RESOURCE_STAFF within the resource's window (CANCELLED_BY_RESOURCE_STAFF "
            "or the command's reason); the entitlement is refunded"
        ),
    },
}
"""Per order type, each legal (from, to) status change and the input that causes it."""


class IllegalTransition(Exception):
    """A handler asked for a status change the table does not list: a bug in the domain, never input."""


def require_legal(order_type: OrderType, previous: OrderStatus | None, status: OrderStatus) -> None:
    """Raise IllegalTransition unless the table lists `previous` → `status` for `order_type`."""
    if (previous, status) not in TRANSITIONS[order_type]:
        source = previous.label if previous is not None else "(created)"
        raise IllegalTransition(f"{order_type}: {source} -> {status.label} is not a legal transition")


def can_become(order: Order, status: OrderStatus) -> bool:
    """Whether the table lets the stored `order` move from its status to `status`."""
    return (order.status, status) in TRANSITIONS[order.order_type]


# The rules below hold for every decision, whichever handler made it: `decide` applies them, so that no
# handler has to remember them. Each takes the order before and after the input (None: none stored / no
# change) and the policy, and returns the local effects it adds.

FollowUpRule = Callable[[Order | None, Order | None, Policy], list[Effect]]


def index_created_order(before: Order | None, after: Order | None, _: Policy) -> list[Effect]:
    """A new order, of either type, is listed among its client's orders (the Order Details API pages them)."""
    if before is not None or after is None:
        return []
    return [IndexOrder(client_id=after.client_id, order_id=after.order_id, created_at=after.created_at)]


def cancel_deadline_on_leaving_pending(before: Order | None, after: Order | None, _: Policy) -> list[Effect]:
    """An order that leaves Pending, by whatever input, no longer needs its confirmation deadline."""
    if before is None or after is None or before.status is not S.PENDING or after.status is S.PENDING:
        return []
    return [CancelConfirmationTimeout(client_id=before.client_id, order_id=before.order_id)]


def schedule_no_show_on_confirmation(
    before: Order | None, after: Order | None, policy: Policy
) -> list[Effect]:
    """A prebooking that becomes Confirmed, by whatever input, gets its no-show deadline: the latest of its
    live items' service dates plus each one's resource grace."""
    if before is None or after is None or before.status is not S.PENDING or after.status is not S.CONFIRMED:
        return []
    due = no_show_deadline(after, policy)
    if due is None:
        return []
    return [ScheduleNoShow(client_id=after.client_id, order_id=after.order_id, deadline=due)]


def reschedule_no_show_on_change(before: Order | None, after: Order | None, policy: Policy) -> list[Effect]:
    """A confirmed (or used) order whose change moved an item (a new item appeared) gets the no-show
    deadline of its new dates beside the old one; each fires once, and the no-show handler ignores the one
    that is not the order's current deadline."""
    if before is None or after is None or after.status not in (S.CONFIRMED, S.USED):
        return []
    if before.status is not after.status or len(after.items) <= len(before.items):
        return []
    due, previous = no_show_deadline(after, policy), no_show_deadline(before, policy)
    if due is None or due == previous:
        return []
    return [ScheduleNoShow(client_id=after.client_id, order_id=after.order_id, deadline=due)]


def no_show_deadline(order: Order, policy: Policy) -> datetime | None:
    """When the order's unused services become NOT_CLAIMED: the latest of its live items' service dates,
    each plus its resource's grace (None without a dated live item)."""
    dues = [
        policy.no_show_at(item.resource_id, item.service_date)
        for item in order.items
        if item.cancelled_at_sequence is None and item.service_date
    ]
    return max(dues, default=None)


FOLLOW_UP_RULES: Final[tuple[FollowUpRule, ...]] = (
    index_created_order,
    cancel_deadline_on_leaving_pending,
    schedule_no_show_on_confirmation,
    reschedule_no_show_on_change,
)


def follow_up_effects(before: Order | None, after: Order | None, policy: Policy) -> list[Effect]:
    """The local effects every rule in FOLLOW_UP_RULES adds for this change, in the rules' order."""
    return [effect for rule in FOLLOW_UP_RULES for effect in rule(before, after, policy)]
