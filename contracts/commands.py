"""Commands that client systems publish to `orders.commands`, keyed by `order_id`."""

from datetime import date
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, model_validator

from contracts.base import (
    PRINTABLE_OR_LINE_BREAKS,
    ClientId,
    ClientIdentifier,
    Identifier,
    Message,
    OrderItemId,
    Passenger,
)
from contracts.limits import (
    MAX_CHANGES_PER_ORDER,
    MAX_ITEM_IDS_PER_COMMAND,
    MAX_ITEMS_PER_ORDER,
    MAX_PASSENGERS_PER_ITEM,
    MAX_REASON_LENGTH,
    MAX_SERVICE_IDS_PER_COMMAND,
    MAX_SERVICES_PER_ORDER,
)
from contracts.statuses import ProductType


class Command(Message):
    """Fields every command carries."""

    command_id: ClientIdentifier = Field(
        description="The client's idempotency key: the same command sent again has no further effect.",
        examples=["cmd-7f3a9c"],
    )
    client_id: ClientId = Field(description="The client system that owns the order.", examples=["acme-air"])
    order_id: ClientIdentifier = Field(
        description="Chosen by the client; also the Kafka message key.", examples=["ORD-2026-000123"]
    )


class PrebookingItem(Message):
    """One product to reserve at one resource; becomes one ONE Order item."""

    order_item_id: OrderItemId | None = Field(
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
        min_length=1, max_length=MAX_PASSENGERS_PER_ITEM, description="One ONE Order service per passenger."
    )


class CreatePrebooking(Command):
    """Create a prebooking order: stored Pending (5), then confirmed or failed by the resources."""

    type: Literal["create_prebooking"] = "create_prebooking"
    items: list[PrebookingItem] = Field(
        min_length=1,
        max_length=MAX_ITEMS_PER_ORDER,
        description=f"What to reserve; at most {MAX_SERVICES_PER_ORDER} passengers summed over the items.",
    )

    @model_validator(mode="after")
    def _services_within_limit(self) -> "CreatePrebooking":
        services = sum(len(item.passengers) for item in self.items)
        if services > MAX_SERVICES_PER_ORDER:
            raise ValueError(
                f"an order holds at most {MAX_SERVICES_PER_ORDER} services (passengers summed over its "
                f"items), not {services}"
            )
        return self


class RecordWalkIn(Command):
    """Record a walk-in usage after the credential was validated at the service point; created Used (2)."""

    type: Literal["record_walk_in"] = "record_walk_in"
    resource_id: Identifier = Field(description="Where the service was used.", examples=["LHR-T5-LOUNGE"])
    product_type: ProductType = Field(description="Kind of product.", examples=[ProductType.LOUNGE])
    credential: ClientIdentifier = Field(
        description="The membership or entitlement credential that was presented.", examples=["CARD-4242"]
    )
    passengers: list[Passenger] = Field(
        min_length=1, max_length=MAX_PASSENGERS_PER_ITEM, description="Who was admitted."
    )


class CancelOrder(Command):
    """Cancel an order, or some of its items when `order_item_ids` is given."""

    type: Literal["cancel_order"] = "cancel_order"
    initiated_by: Literal["CLIENT", "RESOURCE_STAFF"] = Field(
        default="CLIENT",
        description="`RESOURCE_STAFF` cancels a walk-in usage after use (refunding the entitlement).",
    )
    order_item_ids: list[ClientIdentifier] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_ITEM_IDS_PER_COMMAND,
        description="Cancel only these items; the whole order when left out.",
    )
    reason: str | None = Field(
        default=None,
        max_length=MAX_REASON_LENGTH,
        pattern=PRINTABLE_OR_LINE_BREAKS,
        description="Free text, kept with the order; no control characters but tab and line breaks.",
    )


class RedeemOrder(Command):
    """Mark a confirmed order as used, or only some of its services (passengers who showed up)."""

    type: Literal["redeem_order"] = "redeem_order"
    service_ids: list[ClientIdentifier] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SERVICE_IDS_PER_COMMAND,
        description="Redeem only these services; all of them when left out.",
    )


class SuspendServices(Command):
    """Suspend the delivery of an order's services (fraud review): SUSPENDED until `lift_suspension`."""

    type: Literal["suspend_services"] = "suspend_services"
    initiated_by: Literal["OPERATOR", "RESOURCE_STAFF"] = Field(
        default="OPERATOR", description="Who decided it; the event's default `reason` says so."
    )
    service_ids: list[ClientIdentifier] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SERVICE_IDS_PER_COMMAND,
        description="Suspend only these services; every ready or delivered one when left out.",
    )
    reason: str | None = Field(
        default=None,
        max_length=MAX_REASON_LENGTH,
        pattern=PRINTABLE_OR_LINE_BREAKS,
        description="Free text, carried as the event's `reason`; no control characters but tab and line "
        "breaks.",
    )


class LiftSuspension(Command):
    """End the suspension of an order's services: back to the status each had before, or REMOVED."""

    type: Literal["lift_suspension"] = "lift_suspension"
    resolution: Literal["REVERT", "REMOVE"] = Field(
        description="`REVERT`: each service gets back the delivery status it had when suspended. `REMOVE`: "
        "the services lose their value (REMOVED, no refund); an item left with nothing is cancelled."
    )
    service_ids: list[ClientIdentifier] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SERVICE_IDS_PER_COMMAND,
        description="Only these suspended services; every suspended one when left out.",
    )
    reason: str | None = Field(
        default=None,
        max_length=MAX_REASON_LENGTH,
        pattern=PRINTABLE_OR_LINE_BREAKS,
        description="Free text, carried as the event's `reason`; no control characters but tab and line "
        "breaks.",
    )


class ChangeOrder(Command):
    """Move one item of a prebooking to another service date or resource (a reschedule): the order keeps the
    item until the resource of the new one confirms it, then the services move with their ids."""

    type: Literal["change_order"] = "change_order"
    order_item_id: ClientIdentifier = Field(description="The item to move.", examples=["ITEM-1"])
    service_date: date | None = Field(
        default=None,
        description="The new local date of use; the item's own when left out.",
        examples=["2026-12-27"],
    )
    resource_id: Identifier | None = Field(
        default=None, description="The new resource; the item's own when left out.", examples=["LHR-T3-FT"]
    )
    new_order_item_id: OrderItemId | None = Field(
        default=None,
        description="The id of the item the services move to; `CHANGE-<n>` (the order's n-th change, at most "
        f"{MAX_CHANGES_PER_ORDER}) when left out.",
        examples=["ITEM-1-B"],
    )

    @model_validator(mode="after")
    def _changes_something(self) -> "ChangeOrder":
        if self.service_date is None and self.resource_id is None:
            raise ValueError("a change names a new service_date, a new resource_id, or both")
        return self


OrderCommand = Annotated[
    CreatePrebooking
    | RecordWalkIn
    | CancelOrder
    | RedeemOrder
    | SuspendServices
    | LiftSuspension
    | ChangeOrder,
    Field(discriminator="type"),
]
"""Any message on `orders.commands`, told apart by `type`."""

order_command_adapter: TypeAdapter[OrderCommand] = TypeAdapter(OrderCommand)
