"""Messages between the service and the resource operators (`resources.requests`, `resources.replies`)."""

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from contracts.base import PRINTABLE, Identifier, Message, Passenger, TolerantMessage
from contracts.limits import MAX_BOOKING_REFERENCE_LENGTH, MAX_REASON_CODE_LENGTH


class ResourceRequest(Message):
    """Fields of every request to a resource operator."""

    request_id: str = Field(description="Unique per request; stable when the request is re-sent.")
    order_id: Identifier = Field(description="The order concerned; also the Kafka key.")
    reservation_id: str = Field(
        description="One reservation per order item: `<client_id>/<order_id>/<order_item_id>`.",
        examples=["acme/ORD-1/ITEM-1"],
    )
    resource_id: Identifier = Field(description="The resource that holds the reservation.")
    passengers: list[Passenger] = Field(description="The passengers concerned.")


class ReserveRequest(ResourceRequest):
    """Ask the resource to reserve capacity; it answers `confirmed` or `failed`, or `waitlisted` first."""

    type: Literal["reserve"] = "reserve"
    product_type: str = Field(description="Kind of product.", examples=["FAST_TRACK"])
    service_date: str = Field(description="ISO date of use.", examples=["2026-12-24"])


class ReleaseRequest(ResourceRequest):
    """Give reserved capacity back (cancellation, failure of a sibling item, or a late confirmation)."""

    type: Literal["release"] = "release"
    reason: str = Field(description="Why the reservation is released.", examples=["ORDER_FAILED"])


ResourceRequestMessage = Annotated[ReserveRequest | ReleaseRequest, Field(discriminator="type")]
"""Any message on `resources.requests`."""


class ResourceReply(TolerantMessage):
    """Fields of every reply from a resource operator; fields the contract does not name are ignored."""

    # A tolerant reader: operators are third parties who add fields of their own (a booking reference, a note)
    # on their own schedule, and a reply refused for one would fail an order the resource did confirm. Every
    # field named here is checked as strictly as in a command.

    reply_id: Identifier = Field(description="The operator's idempotency key for this reply.")
    order_id: Identifier = Field(description="The order concerned; also the Kafka key.")
    reservation_id: str = Field(description="The reservation the reply is about.")


class ReservationConfirmed(ResourceReply):
    """The resource holds capacity for the reservation."""

    type: Literal["confirmed"] = "confirmed"
    booking_reference: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_BOOKING_REFERENCE_LENGTH,
        pattern=PRINTABLE,
        description="The resource's own reference for the reservation (the code the lounge or lane issues), "
        f"1-{MAX_BOOKING_REFERENCE_LENGTH} characters without control characters; shown with the item in "
        "the ONE Order view.",
        examples=["FT-7Q2K9"],
    )


class ReservationFailed(ResourceReply):
    """The resource cannot hold the reservation."""

    type: Literal["failed"] = "failed"
    reason_code: str = Field(
        min_length=1,
        max_length=MAX_REASON_CODE_LENGTH,
        description="The operator's machine-readable reason.",
        examples=["SOLD_OUT"],
    )
    reason: str = Field(
        max_length=500, description="Human-readable explanation.", examples=["No capacity left"]
    )


class ReservationWaitlisted(ResourceReply):
    """The resource has no capacity now but put the reservation on its waitlist: a `confirmed` or `failed`
    for the same reservation follows when it knows (or the order's waitlist deadline passes first)."""

    type: Literal["waitlisted"] = "waitlisted"


ResourceReplyMessage = Annotated[
    ReservationConfirmed | ReservationFailed | ReservationWaitlisted, Field(discriminator="type")
]
"""Any message on `resources.replies`."""

resource_request_adapter: TypeAdapter[ResourceRequestMessage] = TypeAdapter(ResourceRequestMessage)
resource_reply_adapter: TypeAdapter[ResourceReplyMessage] = TypeAdapter(ResourceReplyMessage)
