"""Builders of valid contract messages with unique ids, so tests state only what matters to them."""

import uuid
from datetime import UTC, datetime, timedelta

from contracts.base import Passenger
from contracts.commands import CreatePrebooking, PrebookingItem, RecordWalkIn
from contracts.statuses import ProductType

SERVICE_DATE = datetime.now(UTC).date() + timedelta(days=60)
"""The service date of the prebookings built here: far enough ahead that no confirmed one becomes a no-show
while the tests run, on whatever day they run (a fixed date turns every one into a no-show once it passed)."""


def unique(prefix: str) -> str:
    """An id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def prebooking(
    *resources: str, client_id: str = "client-a", passengers: int = 1, order_id: str | None = None
) -> CreatePrebooking:
    """A prebooking with one item per resource, each for `passengers` passengers."""
    return CreatePrebooking(
        command_id=unique("cmd"),
        client_id=client_id,
        order_id=order_id or unique("ORD"),
        items=[
            PrebookingItem(
                resource_id=resource,
                product_type=ProductType.FAST_TRACK,
                service_date=SERVICE_DATE,
                passengers=[
                    Passenger(passenger_id=f"PAX-{n}", name=f"Passenger {n}")
                    for n in range(1, passengers + 1)
                ],
            )
            for resource in resources or ("RES-OK",)
        ],
    )


def walk_in(
    resource: str = "LOUNGE-1",
    *,
    client_id: str = "client-a",
    credential: str = "CARD-1",
    passengers: int = 1,
    order_id: str | None = None,
) -> RecordWalkIn:
    """A walk-in usage of `passengers` passengers paid by `credential`."""
    return RecordWalkIn(
        command_id=unique("cmd"),
        client_id=client_id,
        order_id=order_id or unique("WALK"),
        resource_id=resource,
        product_type=ProductType.LOUNGE,
        credential=credential,
        passengers=[
            Passenger(passenger_id=f"PAX-{n}", name=f"Passenger {n}") for n in range(1, passengers + 1)
        ],
    )
