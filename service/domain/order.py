"""The stored shape of an order: operator status plus the ONE Order items and services behind it.

These are msgspec structs, not pydantic models: the order is data the service itself wrote, read, copied
and written again for every input, and msgspec does each of those five to ten times faster (decoding a
stored one-item order 1.5 µs against 6.7, copying it 2.3 against 11.5, encoding it 0.8 against 7.4). The
JSON is the same, byte for byte (`tests/unit/test_order_encoding.py`), so orders stored by either read
back alike. What clients see of an order (events, the API) stays in the pydantic contract.
"""

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

import msgspec

from contracts.base import Passenger
from contracts.statuses import DeliveryStatus, OrderStatus, OrderType, ProductType, ServiceStatus


class ReservationState(StrEnum):
    """Where an item's reservation at its resource stands."""

    NOT_NEEDED = "NOT_NEEDED"  # walk-in: used on the spot, nothing to reserve
    REQUESTED = "REQUESTED"  # `reserve` sent, no reply yet
    WAITLISTED = "WAITLISTED"  # the resource put it on its waitlist: `confirmed` or `failed` still to come
    CONFIRMED = "CONFIRMED"  # the resource holds capacity
    FAILED = "FAILED"  # the resource refused
    WITHDRAWN = "WITHDRAWN"  # `release` sent before the resource answered the `reserve`
    RELEASED = "RELEASED"  # `release` sent for capacity the resource confirmed


class _Stored(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Strict like the models were (`extra="forbid"`): a field this version does not know is refused."""


class Service(_Stored):
    """One passenger's share of an item."""

    service_id: str
    passenger_id: str
    passenger_name: str
    status: ServiceStatus
    delivery_status: DeliveryStatus
    suspended_from: DeliveryStatus | None = None
    """The delivery status the service had when it was last suspended: what a REVERT gives back (kept after
    a REMOVE, so a removed usage still shows it was delivered)."""


class OrderItem(_Stored):
    """One product at one resource, with its reservation."""

    order_item_id: str
    resource_id: str
    product_type: ProductType
    service_date: str | None
    reservation_id: str | None
    reservation: ReservationState
    services: list[Service]
    cancelled_at_sequence: int | None = None
    """The status change whose transaction cancelled this item (the ONE Order retrieve rule needs it)."""
    booking_reference: str | None = None
    """The resource's own reference for the reservation, from its `confirmed` reply."""


class ItemChange(_Stored):
    """A `change_order` of one item: the item its services move to, with its own reservation.

    Kept after it settles (at most `MAX_CHANGES_PER_ORDER`), so that a late reply to its reservation is
    still recognised and compensated. Until its resource confirms, `item` is no part of `Order.items`: the
    order shows, and the passenger holds, the original item.
    """

    from_item_id: str
    item: OrderItem
    """The new item; `item.reservation` is where the change stands (REQUESTED or WAITLISTED: awaiting)."""
    deadline: datetime
    """When the change fails (CHANGE_TIMEOUT) if its resource has not confirmed it."""


class Order(_Stored):
    """An order as stored; `sequence` counts its status events (the store keeps a separate version)."""

    order_id: str
    client_id: str
    order_type: OrderType
    status: OrderStatus
    sequence: int
    created_at: datetime
    updated_at: datetime
    items: list[OrderItem]
    reason: str | None = None
    credential: str | None = None
    """Walk-in: the credential whose entitlement paid for the usage."""
    entitlement_consumption_id: str | None = None
    """Walk-in: the input that consumed the entitlement units, which a refund gives back."""
    changes: list[ItemChange] = msgspec.field(default_factory=list)
    """Prebooking: its `change_order` requests, oldest first."""

    def to_json(self) -> bytes:
        """The stored form."""
        return _ENCODER.encode(self)

    @classmethod
    def from_json(cls, raw: bytes) -> "Order":
        """An order from its stored form; `msgspec.ValidationError` if it is not one."""
        return _ORDER_DECODER.decode(raw)

    def clone(self) -> "Order":
        """A deep copy to change (through the stored form: cheaper than any copy written in Python)."""
        return _ORDER_DECODER.decode(_ENCODER.encode(self))

    def item_by_reservation(self, reservation_id: str) -> OrderItem | None:
        """The item whose reservation has this id, if any."""
        return next((item for item in self.items if item.reservation_id == reservation_id), None)

    def change_by_reservation(self, reservation_id: str) -> ItemChange | None:
        """The change whose new item's reservation has this id, if any."""
        return next((c for c in self.changes if c.item.reservation_id == reservation_id), None)

    @property
    def pending_change(self) -> ItemChange | None:
        """The change still awaiting its resource's answer, if any (there is at most one)."""
        return next(
            (
                c
                for c in self.changes
                if c.item.reservation in (ReservationState.REQUESTED, ReservationState.WAITLISTED)
            ),
            None,
        )


def copy_item(item: OrderItem) -> OrderItem:
    """A deep copy of an item."""
    return _ITEM_DECODER.decode(_ENCODER.encode(item))


_ENCODER = msgspec.json.Encoder()
_ORDER_DECODER = msgspec.json.Decoder(Order)
_ITEM_DECODER = msgspec.json.Decoder(OrderItem)


def services_for(
    order_item_id: str,
    passengers: Sequence[Passenger],
    status: ServiceStatus,
    delivery_status: DeliveryStatus,
) -> list[Service]:
    """One service per passenger of an item, with the stable id `<order_item_id>-<passenger_id>`."""
    return [
        Service(
            service_id=f"{order_item_id}-{p.passenger_id}",
            passenger_id=p.passenger_id,
            passenger_name=p.name,
            status=status,
            delivery_status=delivery_status,
        )
        for p in passengers
    ]
