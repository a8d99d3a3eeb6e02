"""The single entry point of the domain: one input and the current order in, one decision out."""

from datetime import datetime

from contracts.commands import CancelOrder, CreatePrebooking, RecordWalkIn, RedeemOrder
from contracts.resources import ReservationConfirmed, ReservationFailed
from contracts.statuses import RejectionCode
from service.domain.decisions import Decision, reject
from service.domain.order import Order
from service.domain.prebooking import confirm_reservation, create_prebooking, fail_reservation

Command = CreatePrebooking | RecordWalkIn | CancelOrder | RedeemOrder
Reply = ReservationConfirmed | ReservationFailed


def decide(order: Order | None, message: Command | Reply, now: datetime) -> Decision:
    """Apply one command or resource reply to the order it names (None when no such order is stored)."""
    if isinstance(message, ReservationConfirmed | ReservationFailed):
        return _on_reply(order, message, now)
    if order is not None and order.client_id != message.client_id:
        # Another client's order looks exactly like a missing one: no existence leak.
        return reject(message, message.type, RejectionCode.ORDER_NOT_FOUND, "no such order", now)
    if isinstance(message, CreatePrebooking):
        return create_prebooking(order, message, now)
    return reject(
        message, message.type, RejectionCode.NOT_SUPPORTED, f"{message.type} is not supported yet", now
    )


def _on_reply(order: Order | None, reply: Reply, now: datetime) -> Decision:
    if order is None:
        return Decision(anomaly="UNKNOWN_ORDER")
    if isinstance(reply, ReservationConfirmed):
        return confirm_reservation(order, reply, now)
    return fail_reservation(order, reply, now)
