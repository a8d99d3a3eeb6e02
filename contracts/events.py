"""Messages the service publishes: status changes, rejections and dead letters.

Their readers ignore fields they do not know (`TolerantMessage`), so that a newer service may add optional
fields within v1 without breaking an older consumer, the webhook relay included.
"""

from datetime import datetime
from typing import Literal

from pydantic import Field

from contracts.base import TolerantMessage
from contracts.statuses import (
    DeliveryStatus,
    OneOrderStatus,
    OrderItemStatus,
    OrderStatus,
    OrderType,
    ProductType,
    RejectionCode,
    ServiceStatus,
)


class ServiceView(TolerantMessage):
    """A ONE Order service: one passenger's share of an order item, delivered whole or not at all."""

    service_id: str = Field(
        description="Stable id: `<order_item_id>-<passenger_id>`.", examples=["ITEM-1-PAX-1"]
    )
    passenger_id: str = Field(description="The passenger it is for.", examples=["PAX-1"])
    passenger_name: str = Field(description="Passenger name.", examples=["Ada Lovelace"])
    status: ServiceStatus = Field(description="ONE Order service status.")
    delivery_status: DeliveryStatus = Field(
        description="ONE Order delivery status; decides whether it holds value."
    )


class OrderItemView(TolerantMessage):
    """A ONE Order item: one product at one resource."""

    order_item_id: str = Field(description="Unique within the order.", examples=["ITEM-1"])
    resource_id: str = Field(description="The resource that provides it.", examples=["LHR-T5-FT"])
    product_type: ProductType = Field(description="Kind of product.")
    service_date: str | None = Field(description="ISO date of use (prebookings).", examples=["2026-12-24"])
    status: OrderItemStatus = Field(description="Derived from its services by the ONE Order rules.")
    booking_reference: str | None = Field(
        default=None,
        description="The resource's own reference for the reservation, from its `confirmed` reply; null "
        "until then, or when the resource gave none.",
        examples=["FT-7Q2K9"],
    )
    services: list[ServiceView] = Field(description="One per passenger.")


class OrderView(TolerantMessage):
    """The ONE Order view: ACTIVE and CLOSED items; CANCELLED ones only if all were cancelled at once."""

    status: OneOrderStatus = Field(description="OPENED while any service holds value, else CLOSED.")
    items: list[OrderItemView] = Field(description="The items visible under the ONE Order retrieve rule.")


class OrderStatusChanged(TolerantMessage):
    """An order's operator status changed; published on `orders.status-changed`, keyed by `order_id`."""

    type: Literal["order_status_changed"] = "order_status_changed"
    event_id: str = Field(
        description="Stable across re-publication: deduplicate on it.",
        examples=["5b0e8f52-5b1c-5d0e-9a43-3c4f7a1d2e90"],
    )
    order_id: str = Field(description="The order; also the Kafka key.", examples=["ORD-2026-000123"])
    client_id: str = Field(description="The client that owns the order.", examples=["acme-air"])
    order_type: OrderType = Field(description="`WALK_IN` or `PREBOOKING`.")
    sequence: int = Field(ge=1, description="1, 2, 3 … per order, without gaps: order events by it.")
    status: OrderStatus = Field(description="The new operator status code (5, 1, 2, 3, 10).")
    status_name: str = Field(description="The status name: Pending, Confirmed, Used, Cancelled, Failed.")
    previous_status: OrderStatus | None = Field(description="The status before; null for the first event.")
    reason: str | None = Field(
        description="Why, when the change was not the happy path (e.g. a resource's reason code).",
        examples=["SOLD_OUT"],
    )
    occurred_at: datetime = Field(description="When the service applied the change (UTC).")
    order: OrderView = Field(description="The ONE Order view after the change.")


class FieldError(TolerantMessage):
    """Where a command breaks the contract and how, never the value it held (that may be personal data)."""

    loc: list[str | int] = Field(
        description="The path to the field: field names and list indexes.",
        examples=[["items", 0, "service_date"]],
    )
    message: str = Field(description="What is wrong there.", examples=["Input should be a valid date"])


class CommandRejected(TolerantMessage):
    """A command that was not carried out; published on `orders.command-rejected`."""

    type: Literal["command_rejected"] = "command_rejected"
    event_id: str = Field(description="Stable across re-publication: deduplicate on it.")
    command_id: str = Field(description="The rejected command's `command_id`.")
    command_type: str = Field(description="The rejected command's `type`.", examples=["cancel_order"])
    order_id: str = Field(description="The order the command named; also the Kafka key.")
    client_id: str = Field(description="The client that sent the command.")
    code: RejectionCode = Field(description="Stable machine-readable reason.")
    message: str = Field(description="Human-readable explanation.")
    occurred_at: datetime = Field(description="When the service rejected it (UTC).")
    errors: list[FieldError] | None = Field(
        default=None,
        description="With `INVALID_COMMAND` for a command that does not match the contract: the first 10 "
        "problems, by location. Null otherwise.",
    )


class EndpointStateChanged(TolerantMessage):
    """A webhook endpoint was paused, disabled or enabled again. Sent as a webhook to the client's other
    endpoints subscribed to `endpoint_state_changed` (as Svix's operational `EndpointDisabled`); not
    published on Kafka."""

    type: Literal["endpoint_state_changed"] = "endpoint_state_changed"
    event_id: str = Field(description="Unique per change: deduplicate on it.")
    client_id: str = Field(description="The client the endpoint belongs to.")
    endpoint_id: str = Field(description="The endpoint whose state changed.")
    url: str = Field(description="Its URL.")
    state: Literal["ACTIVE", "PAUSED", "DISABLED"] = Field(
        description="The new state: PAUSED while the circuit breaker holds deliveries back, until "
        "`paused_until`; DISABLED until enabled again; ACTIVE once enabled."
    )
    reason: str | None = Field(
        description="Why, e.g. `answered 410 Gone`, `failing for too long`, `disabled by the client`."
    )
    paused_until: datetime | None = Field(default=None, description="With PAUSED: when attempts resume.")
    occurred_at: datetime = Field(description="When the state changed (UTC).")


class DeadLetter(TolerantMessage):
    """Input that could not be parsed or validated; published on `orders.dead-letter`."""

    type: Literal["dead_letter"] = "dead_letter"
    source_topic: str = Field(description="Where the message was read.")
    source_partition: int = Field(description="Its partition.")
    source_offset: int = Field(description="Its offset.")
    key: str | None = Field(description="Its key, base64-encoded; null when it had none.")
    value: str = Field(description="The original bytes, base64-encoded (only the first bytes if too large).")
    value_truncated: bool = Field(
        default=False, description="True when `value` holds only the first ORDERS_MAX_MESSAGE_BYTES bytes."
    )
    error: str = Field(description="Why it was refused: the parse or validation error.")
    error_type: Literal["NOT_JSON", "SCHEMA", "TOO_LARGE", "PROCESSING"] = Field(
        description="The class of the failure."
    )
    occurred_at: datetime = Field(description="When it was dead-lettered (UTC).")
