"""Commands that client systems publish to `orders.commands`, keyed by `order_id`."""

from datetime import date
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from contracts.base import Identifier, Message, Passenger
from contracts.statuses import ProductType


class Command(Message):
    """Fields every command carries."""

    command_id: Identifier = Field(
        description="The client's idempotency key: the same command sent again has no further effect.",
        examples=["cmd-7f3a9c"],
    )
    client_id: Identifier = Field(description="The client system that owns the order.", examples=["acme-air"])
    order_id: Identifier = Field(
        description="Chosen by the client; also the Kafka message key.", examples=["ORD-2026-000123"]
    )


class PrebookingItem(Message):
    """One product to reserve at one resource; becomes one ONE Order item."""

    order_item_id: Identifier | None = Field(
        default=None,
        description="Unique within the order; assigned as `ITEM-<n>` (1-based) when left out.",
        examples=["ITEM-1"],
    )
    resource_id: Identifier = Field(
        description="The lounge, fast track lane, … to reserve.", examples=["LHR-T5-FT"]
    )
    product_type: ProductType = Field(description="Kind of product.", examples=[ProductType.FAST_TRACK])
    service_date: date = Field(description="Local date of use at the resource.", examples=["2026-12-24"])
    passengers: list[Passenger] = Field(
        min_length=1, max_length=50, description="One ONE Order service per passenger."
    )


class CreatePrebooking(Command):
    """Create a prebooking order: stored Pending (5), then confirmed or failed by the resources."""

    type: Literal["create_prebooking"] = "create_prebooking"
    items: list[PrebookingItem] = Field(min_length=1, max_length=20, description="What to reserve.")


class RecordWalkIn(Command):
    """Record a walk-in usage after the credential was validated at the service point; created Used (2)."""

    type: Literal["record_walk_in"] = "record_walk_in"
    resource_id: Identifier = Field(description="Where the service was used.", examples=["LHR-T5-LOUNGE"])
    product_type: ProductType = Field(description="Kind of product.", examples=[ProductType.LOUNGE])
    credential: Identifier = Field(
        description="The membership or entitlement credential that was presented.", examples=["CARD-4242"]
    )
    passengers: list[Passenger] = Field(min_length=1, max_length=50, description="Who was admitted.")


class CancelOrder(Command):
    """Cancel an order, or some of its items when `order_item_ids` is given."""

    type: Literal["cancel_order"] = "cancel_order"
    initiated_by: Literal["CLIENT", "RESOURCE_STAFF"] = Field(
        default="CLIENT",
        description="`RESOURCE_STAFF` cancels a walk-in usage after use (refunding the entitlement).",
    )
    order_item_ids: list[Identifier] | None = Field(
        default=None, min_length=1, description="Cancel only these items; the whole order when left out."
    )
    reason: str | None = Field(default=None, max_length=500, description="Free text, kept with the order.")


class RedeemOrder(Command):
    """Mark a confirmed order as used, or only some of its services (passengers who showed up)."""

    type: Literal["redeem_order"] = "redeem_order"
    service_ids: list[Identifier] | None = Field(
        default=None, min_length=1, description="Redeem only these services; all of them when left out."
    )


OrderCommand = Annotated[
    CreatePrebooking | RecordWalkIn | CancelOrder | RedeemOrder, Field(discriminator="type")
]
"""Any message on `orders.commands`, told apart by `type`."""

order_command_adapter: TypeAdapter[OrderCommand] = TypeAdapter(OrderCommand)
