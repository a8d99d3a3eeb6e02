"""The domain's own codes: anomalies of resource replies, reasons of status events and of releases.

Each is a StrEnum whose values are the wire values documented in docs/contract.md (Reason values) and
docs/operations.md (Anomalies), so a member serialises byte for byte as the string it replaced.
"""

from enum import StrEnum

from service.domain.order import ReservationState


class Anomaly(StrEnum):
    """Why a resource reply (or a reused reply id) changed no status, as counted and logged."""

    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"
    LATE_CONFIRMATION = "LATE_CONFIRMATION"
    LATE_FAILURE = "LATE_FAILURE"
    LATE_WAITLISTING = "LATE_WAITLISTING"
    """A `waitlisted` for a reservation already withdrawn (its `release` is on its way to the resource)."""
    REPLY_FOR_REQUESTED_RESERVATION = "REPLY_FOR_REQUESTED_RESERVATION"
    """A `failed` for a reservation still awaiting its reply, on an order no longer Pending."""
    REPLY_FOR_WAITLISTED_RESERVATION = "REPLY_FOR_WAITLISTED_RESERVATION"
    """A second `waitlisted` (new reply_id) for a reservation already on the waitlist."""
    REPLY_FOR_CONFIRMED_RESERVATION = "REPLY_FOR_CONFIRMED_RESERVATION"
    REPLY_FOR_FAILED_RESERVATION = "REPLY_FOR_FAILED_RESERVATION"
    REPLY_FOR_RELEASED_RESERVATION = "REPLY_FOR_RELEASED_RESERVATION"
    REPLY_ID_CONFLICT = "REPLY_ID_CONFLICT"
    """A known reply_id of the order arrived again with different content (found by the processor)."""

    @classmethod
    def reply_for(cls, reservation: ReservationState) -> "Anomaly":
        """The anomaly of a reply for a reservation that already had its answer (ValueError if none fits)."""
        return cls(f"REPLY_FOR_{reservation}_RESERVATION")


class Reason(StrEnum):
    """The service's own values of `order_status_changed.reason`.

    The field is a plain `str`: a failure carries the resource's `reason_code` and a cancellation the
    command's free-text `reason` when one was given; these members are the values the service chooses.
    """

    CONFIRMATION_TIMEOUT = "CONFIRMATION_TIMEOUT"
    WAITLISTED = "WAITLISTED"
    """A resource put an item on its waitlist; the order stays Pending."""
    WAITLIST_TIMEOUT = "WAITLIST_TIMEOUT"
    """A waitlisted order was still Pending at its waitlist deadline."""
    CANCELLED_BY_CLIENT = "CANCELLED_BY_CLIENT"
    CANCELLED_BY_RESOURCE_STAFF = "CANCELLED_BY_RESOURCE_STAFF"
    ITEMS_CANCELLED = "ITEMS_CANCELLED"
    SERVICES_REDEEMED = "SERVICES_REDEEMED"
    NO_SHOW = "NO_SHOW"
    """The service date and its grace passed with services never redeemed: they are NOT_CLAIMED."""
    SUSPENDED_BY_OPERATOR = "SUSPENDED_BY_OPERATOR"
    SUSPENDED_BY_RESOURCE_STAFF = "SUSPENDED_BY_RESOURCE_STAFF"
    SUSPENSION_REVERTED = "SUSPENSION_REVERTED"
    SUSPENDED_SERVICES_REMOVED = "SUSPENDED_SERVICES_REMOVED"
    CHANGE_REQUESTED = "CHANGE_REQUESTED"
    """`change_order` accepted: the new item's `reserve` is out; the order still holds the original item."""
    ORDER_CHANGED = "ORDER_CHANGED"
    """The new item's resource confirmed: the services moved (TRANSFERRED in the original item)."""
    CHANGE_REFUSED = "CHANGE_REFUSED"
    """The new item's resource refused: the order stays as it was."""
    CHANGE_TIMEOUT = "CHANGE_TIMEOUT"
    """The new item's resource did not confirm in time: the order stays as it was."""
    CHANGE_ABANDONED = "CHANGE_ABANDONED"
    """The original item could no longer move when the new one was confirmed (redeemed, cancelled,
    suspended or not claimed meanwhile): the new reservation is released, the order stays as it was."""


class ReleaseReason(StrEnum):
    """Values of `release.reason`: why capacity is given back to a resource."""

    ORDER_FAILED = "ORDER_FAILED"
    """A sibling item failed, or the confirmation timed out."""
    ORDER_CANCELLED = "ORDER_CANCELLED"
    """The order or the item was cancelled."""
    LATE_CONFIRMATION = "LATE_CONFIRMATION"
    """A confirmation arrived for a reservation that was withdrawn or that the resource had refused."""
    ORDER_CHANGED = "ORDER_CHANGED"
    """The item moved to another date or resource (`change_order`): the original reservation is freed."""
    CHANGE_WITHDRAWN = "CHANGE_WITHDRAWN"
    """A change was given up (timed out, its order failed or its item cancelled) before its resource
    confirmed it."""
