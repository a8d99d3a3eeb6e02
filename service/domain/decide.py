"""The single entry point of the domain: one input and the current order in, one decision out.

`decide` picks the handler for the input, then adds the effects of `transitions.FOLLOW_UP_RULES`.
"""

from dataclasses import dataclass
from datetime import datetime

import msgspec

from contracts.commands import (
    CancelOrder,
    ChangeOrder,
    CreatePrebooking,
    LiftSuspension,
    RecordWalkIn,
    RedeemOrder,
    SuspendServices,
)
from contracts.resources import ReservationConfirmed, ReservationFailed, ReservationWaitlisted
from contracts.statuses import OrderType, RejectionCode
from service.domain.cancellation import cancel_prebooking
from service.domain.change import confirm_change, expire_change, fail_change, request_change, waitlist_change
from service.domain.local_effects import EntitlementCheck
from service.domain.no_show import declare_no_show
from service.domain.order import Order
from service.domain.outcome import Decision, reject
from service.domain.policy import Policy
from service.domain.prebooking import (
    confirm_reservation,
    create_prebooking,
    expire_confirmation,
    expire_waitlist,
    fail_reservation,
    waitlist_reservation,
)
from service.domain.reasons import Anomaly
from service.domain.redemption import redeem
from service.domain.suspension import lift_suspension, suspend_services
from service.domain.transitions import follow_up_effects
from service.domain.walk_in import cancel_walk_in, record_walk_in

Command = (
    CreatePrebooking
    | RecordWalkIn
    | CancelOrder
    | RedeemOrder
    | SuspendServices
    | LiftSuspension
    | ChangeOrder
)
Reply = ReservationConfirmed | ReservationFailed | ReservationWaitlisted


@dataclass(frozen=True)
class ConfirmationDeadline:
    """The clock's input: the order's confirmation timeout has passed."""

    order_id: str


@dataclass(frozen=True)
class WaitlistDeadline:
    """The clock's input: the waitlist deadline of an order with a waitlisted item has passed."""

    order_id: str


@dataclass(frozen=True)
class NoShowDeadline:
    """The clock's input: the last service date of a confirmed order, plus its grace, has passed."""

    order_id: str


@dataclass(frozen=True)
class ChangeDeadline:
    """The clock's input: the deadline of a change (`change_order`) awaiting its resource has passed."""

    order_id: str


Deadline = ConfirmationDeadline | WaitlistDeadline | NoShowDeadline | ChangeDeadline
"""The clock's inputs."""

Input = Command | Reply | Deadline


class Context(msgspec.Struct, frozen=True):
    """What a decision needs besides the order and the input."""

    now: datetime
    policy: Policy
    input_id: str = ""
    entitlement: EntitlementCheck | None = None
    """For `record_walk_in`: the outcome of consuming the credential's units for this input."""


def decide(order: Order | None, message: Input, context: Context) -> Decision:
    """Apply one command, resource reply or deadline to the order it names (None when none is stored)."""
    decision = _decide(order, message, context)
    decision.effects += follow_up_effects(order, decision.order, context.policy)
    return decision


def _decide(order: Order | None, message: Input, context: Context) -> Decision:
    now = context.now
    if isinstance(message, ReservationConfirmed | ReservationFailed | ReservationWaitlisted):
        return _on_reply(order, message, context)
    if isinstance(message, Deadline):
        return _on_deadline(order, message, context) if order is not None else Decision.nothing()
    if isinstance(message, CreatePrebooking):
        return create_prebooking(order, message, now, context.policy)
    if isinstance(message, RecordWalkIn):
        return record_walk_in(order, message, context.input_id, context.entitlement, now)
    if order is None or order.client_id != message.client_id:
        # Another client's order looks exactly like a missing one: no existence leak.
        return reject(message, message.type, RejectionCode.ORDER_NOT_FOUND, "no such order", now)
    if isinstance(message, RedeemOrder):
        return redeem(order, message, now)
    if isinstance(message, SuspendServices):
        return suspend_services(order, message, now)
    if isinstance(message, LiftSuspension):
        return lift_suspension(order, message, now)
    if isinstance(message, ChangeOrder):
        return request_change(order, message, now, context.policy)
    if order.order_type is OrderType.WALK_IN:
        return cancel_walk_in(order, message, now, context.policy)
    return cancel_prebooking(order, message, now)


def _on_deadline(order: Order, deadline: Deadline, context: Context) -> Decision:
    if isinstance(deadline, ConfirmationDeadline):
        return expire_confirmation(order, context.now, context.policy)
    if isinstance(deadline, WaitlistDeadline):
        return expire_waitlist(order, context.now)
    if isinstance(deadline, NoShowDeadline):
        return declare_no_show(order, context.now, context.policy)
    return expire_change(order, context.now)


def _on_reply(order: Order | None, reply: Reply, context: Context) -> Decision:
    if order is None:
        return Decision(anomaly=Anomaly.UNKNOWN_ORDER)
    if order.item_by_reservation(reply.reservation_id) is None and order.change_by_reservation(
        reply.reservation_id
    ):
        # The reservation of a change not confirmed (yet, or ever): the change decides, not the order.
        if isinstance(reply, ReservationConfirmed):
            return confirm_change(order, reply, context.now)
        if isinstance(reply, ReservationWaitlisted):
            return waitlist_change(order, reply.reservation_id)
        return fail_change(order, reply, context.now)
    if isinstance(reply, ReservationConfirmed):
        return confirm_reservation(order, reply, context.now)
    if isinstance(reply, ReservationWaitlisted):
        return waitlist_reservation(order, reply, context.now, context.policy)
    return fail_reservation(order, reply, context.now)
