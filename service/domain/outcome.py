"""What one input decides (`Decision`), and the two builders of its messages: `change_status` for a status
event, checked against the transition table, and `reject` for a refusal."""

import hashlib
import uuid
from datetime import datetime

import msgspec

from contracts.commands import Command
from contracts.events import CommandRejected
from contracts.statuses import OrderStatus, RejectionCode
from service.domain.local_effects import Effect
from service.domain.order import Order
from service.domain.reasons import Anomaly
from service.domain.resource_requests import ReleaseRequest, ReserveRequest
from service.domain.status_event import StatusEvent, event_view
from service.domain.transitions import require_legal

# Event ids are derived, not random, so that a re-published event keeps its id even if it is rebuilt. A
# status event's name holds its client: order ids are scoped per client, and two clients' orders under one
# id must not share event ids (a consumer deduplicating on them would drop one client's events).
_EVENT_NAMESPACE = uuid.UUID("0f1c6a2e-8e39-4c55-9a43-6a3b0f3b7d11")
_NAMESPACE_BYTES = _EVENT_NAMESPACE.bytes


def event_id_for(name: str) -> str:
    """`str(uuid.uuid5(_EVENT_NAMESPACE, name))`, without building a `UUID` (a fifth of the cost): two of
    them per order."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Decision(msgspec.Struct):
    """The outcome of one input: a new order state with the messages and effects it implies, a rejection,
    an anomaly, or nothing at all (`Decision.nothing()`)."""

    order: Order | None = None
    """The order state to store, or None when the stored state stays as it is."""
    events: list[StatusEvent] = msgspec.field(default_factory=list)
    requests: list[ReserveRequest | ReleaseRequest] = msgspec.field(default_factory=list)
    effects: list[Effect] = msgspec.field(default_factory=list)
    rejection: CommandRejected | None = None
    anomaly: Anomaly | None = None
    """Why a reply changed no status, when that is worth counting (stray, late, contradictory)."""

    @classmethod
    def nothing(cls) -> "Decision":
        """The input changes nothing and is not even recorded (a deadline for an order that left Pending)."""
        return cls()

    @property
    def is_no_change(self) -> bool:
        """Whether this is `nothing()`: no state, message, effect, rejection or anomaly to store."""
        return (
            self.order is None
            and self.rejection is None
            and self.anomaly is None
            and not (self.events or self.requests or self.effects)
        )


def change_status(order: Order, status: OrderStatus, reason: str | None, now: datetime) -> StatusEvent:
    """Move `order` (in place) to `status` and return the event that says so; IllegalTransition if the
    table in `service.domain.transitions` does not list the change."""
    previous = order.status if order.sequence else None
    require_legal(order.order_type, previous, status)
    order.status = status
    order.sequence += 1
    order.updated_at = now
    order.reason = reason
    return StatusEvent(
        event_id=event_id_for(f"{order.client_id}/{order.order_id}/{order.sequence}"),
        order_id=order.order_id,
        client_id=order.client_id,
        order_type=order.order_type,
        sequence=order.sequence,
        status=status,
        status_name=status.label,
        previous_status=previous,
        reason=reason,
        occurred_at=now,
        order=event_view(order),
    )


def reject(
    command: Command, command_type: str, code: RejectionCode, message: str, now: datetime, variant: str = ""
) -> Decision:
    """A decision that refuses `command` and changes nothing.

    `variant` tells apart rejections of different payloads sent under one command_id (a conflict), so that
    consumers deduplicating on `event_id` do not drop the second one.
    """
    event_id = event_id_for(f"{command.client_id}/{command.command_id}/rejected/{variant}")
    return Decision(
        rejection=CommandRejected(
            event_id=event_id,
            command_id=command.command_id,
            command_type=command_type,
            order_id=command.order_id,
            client_id=command.client_id,
            code=code,
            message=message,
            occurred_at=now,
        )
    )
