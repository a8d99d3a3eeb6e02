"""Status codes and names of contract v1: the operator statuses and the ONE Order statuses."""

from enum import IntEnum, StrEnum


class OrderStatus(IntEnum):
    """The operator status a client sees first; the numeric codes are part of the public contract."""

    CONFIRMED = 1
    USED = 2
    CANCELLED = 3
    PENDING = 5
    FAILED = 10

    @property
    def label(self) -> str:
        """The status name as written in the contract: `Pending`, `Confirmed`, …"""
        return self.name.capitalize()


class OrderType(StrEnum):
    """Walk-in orders are created Used; prebookings start Pending."""

    WALK_IN = "WALK_IN"
    PREBOOKING = "PREBOOKING"


class ProductType(StrEnum):
    """The kind of airport experience a resource offers."""

    LOUNGE = "LOUNGE"
    FAST_TRACK = "FAST_TRACK"
    DINING = "DINING"
    SPA = "SPA"
    OTHER = "OTHER"


class OneOrderStatus(StrEnum):
    """ONE Order: OPENED while any service holds value, CLOSED when none does."""

    OPENED = "OPENED"
    CLOSED = "CLOSED"


class OrderItemStatus(StrEnum):
    """ONE Order item status, derived from its services."""

    ACTIVE = "ACTIVE"
    CANCELLED = "CANCELLED"
    CLOSED = "CLOSED"


class ServiceStatus(StrEnum):
    """ONE Order service status."""

    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    TRANSFERRED = "TRANSFERRED"
    REQUESTED = "REQUESTED"
    WAITLISTED = "WAITLISTED"


class DeliveryStatus(StrEnum):
    """ONE Order service delivery status; whether a service holds value follows from it."""

    CONFIRMED = "CONFIRMED"
    READY_TO_PROCEED = "READY_TO_PROCEED"
    DELIVERED = "DELIVERED"
    REMOVED_HOLD_VALUE = "REMOVED_HOLD_VALUE"
    REMOVED = "REMOVED"
    UNABLE_TO_DELIVER = "UNABLE_TO_DELIVER"
    EXPIRED = "EXPIRED"
    FAILED_TO_DELIVER = "FAILED_TO_DELIVER"
    IN_PROGRESS = "IN_PROGRESS"
    NOT_CLAIMED = "NOT_CLAIMED"
    READY_TO_DELIVER = "READY_TO_DELIVER"
    REQUESTED = "REQUESTED"
    SUSPENDED = "SUSPENDED"

    @property
    def holds_value(self) -> bool:
        """Whether the passenger can still get something from the service (docs/contract.md#one-order-view).

        Delivered and removed services hold none (the seed's CLOSED rule); neither do the statuses that
        end a service without delivering it: UNABLE_TO_DELIVER (refused or unanswered), NOT_CLAIMED
        (no-show), EXPIRED and FAILED_TO_DELIVER. SUSPENDED holds value: it may revert.
        """
        return self not in _NO_VALUE


_NO_VALUE = frozenset(
    {
        DeliveryStatus.DELIVERED,
        DeliveryStatus.REMOVED,
        DeliveryStatus.UNABLE_TO_DELIVER,
        DeliveryStatus.NOT_CLAIMED,
        DeliveryStatus.EXPIRED,
        DeliveryStatus.FAILED_TO_DELIVER,
    }
)


class RejectionCode(StrEnum):
    """Why a valid command was not carried out (`command_rejected.code`)."""

    ORDER_ALREADY_EXISTS = "ORDER_ALREADY_EXISTS"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    INVALID_STATE = "INVALID_STATE"
    INVALID_COMMAND = "INVALID_COMMAND"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    UNKNOWN_ORDER_ITEM = "UNKNOWN_ORDER_ITEM"
    UNKNOWN_SERVICE = "UNKNOWN_SERVICE"
    UNKNOWN_CREDENTIAL = "UNKNOWN_CREDENTIAL"
    ENTITLEMENT_EXHAUSTED = "ENTITLEMENT_EXHAUSTED"
    CANCELLATION_WINDOW_CLOSED = "CANCELLATION_WINDOW_CLOSED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    SERVICES_NOT_CLAIMED = "SERVICES_NOT_CLAIMED"
    """Redemption or cancellation of services that became NOT_CLAIMED: their date (and grace) passed."""
    SERVICES_SUSPENDED = "SERVICES_SUSPENDED"
    """Redemption or cancellation (a refund) of services whose delivery is suspended: refused until the
    suspension is lifted."""
    SERVICES_DELIVERED = "SERVICES_DELIVERED"
    """`change_order` of an item with delivered (redeemed) services: a used service cannot move."""
    CHANGE_IN_PROGRESS = "CHANGE_IN_PROGRESS"
    """`change_order` while an earlier change of the order still awaits its resource's reply."""
    CHANGE_LIMIT_REACHED = "CHANGE_LIMIT_REACHED"
    """`change_order` beyond the `MAX_CHANGES_PER_ORDER` changes an order may hold."""
    CLIENT_MISMATCH = "CLIENT_MISMATCH"
    """`per_client` topic layout: the command's `client_id` is not the client whose topic it was sent to.
    Answered on the sender's (the topic's) rejections topic; nothing is claimed or changed."""
