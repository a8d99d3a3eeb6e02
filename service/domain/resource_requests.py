"""The requests the domain sends to resource operators, as msgspec structs that encode to the contract's JSON.

The contract is `contracts.resources.ReserveRequest` and `ReleaseRequest`, pydantic models that operators
read. The service only writes them, one reserve request per item of every prebooking: building the model
(its passengers with it) and serialising it cost about 9 µs each, against about 1 µs here. These structs
have the contract's fields, in its order, with its types; the bytes they encode are the ones the contract's
`model_dump_json()` gives (`tests/unit/test_resource_requests.py` compares both, and fails if the contract
gains a field these lack). The names are the contract's: they are the same messages.
"""

from typing import Literal

import msgspec


class Passenger(msgspec.Struct):
    """`contracts.base.Passenger`. Not validated again: the command that created the order was, under the
    limits of its day, which may have been wider (names of up to 200 characters before contract v1.1).
    Refusing to release capacity for such an order now would help nobody."""

    passenger_id: str
    name: str


class ReserveRequest(msgspec.Struct, kw_only=True):
    """`contracts.resources.ReserveRequest`: ask the resource to hold capacity."""

    request_id: str
    order_id: str
    reservation_id: str
    resource_id: str
    passengers: list[Passenger]
    type: Literal["reserve"] = "reserve"
    product_type: str
    service_date: str

    def to_json(self) -> bytes:
        """The request as sent."""
        return _ENCODER.encode(self)


class ReleaseRequest(msgspec.Struct, kw_only=True):
    """`contracts.resources.ReleaseRequest`: give reserved capacity back."""

    request_id: str
    order_id: str
    reservation_id: str
    resource_id: str
    passengers: list[Passenger]
    type: Literal["release"] = "release"
    reason: str

    def to_json(self) -> bytes:
        """The request as sent."""
        return _ENCODER.encode(self)


ResourceRequest = ReserveRequest | ReleaseRequest
"""Any request the domain decides to send."""

_ENCODER = msgspec.json.Encoder()
