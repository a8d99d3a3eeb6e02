"""The requests the domain sends to resources (`service.domain.resource_requests`) are the contract's
`ReserveRequest` and `ReleaseRequest`, byte for byte. `check_sent_as_the_contract` also runs on every request
of the random lifecycles in `test_lifecycle_properties.py`."""

from collections.abc import Sequence

import msgspec
import pytest
from pydantic import BaseModel

from contracts import resources
from contracts.base import Passenger as ContractPassenger
from contracts.resources import resource_request_adapter
from service.domain.decide import decide
from service.domain.resource_requests import Passenger, ReleaseRequest, ReserveRequest, ResourceRequest
from testkit.factories import prebooking
from tests.unit.test_lifecycle_decisions import NOW, at, cancel, confirmed_order


def check_sent_as_the_contract(requests: Sequence[ResourceRequest]) -> None:
    """Each request encodes to what pydantic gives for the same content, and reads back as the contract's
    message of its type (the operator's reader)."""
    for request in requests:
        sent = request.to_json()
        read = resource_request_adapter.validate_json(sent)
        assert type(read).__name__ == type(request).__name__
        assert read.model_dump_json().encode() == sent


@pytest.mark.parametrize(
    ("struct", "model"),
    [
        (ReserveRequest, resources.ReserveRequest),
        (ReleaseRequest, resources.ReleaseRequest),
        (Passenger, ContractPassenger),
    ],
)
def test_the_structs_have_the_contracts_fields_in_its_order(
    struct: type[msgspec.Struct], model: type[BaseModel]
) -> None:
    """A field added to the contract fails here until the struct has it too."""
    assert struct.__struct_fields__ == tuple(model.model_fields)


def test_a_prebooking_asks_each_resource_in_the_contracts_json() -> None:
    command = prebooking("LOUNGE-1", "FASTTRACK-1", order_id="ORD-1", passengers=2)
    asked = decide(None, command, at(NOW)).requests
    assert [(r.type, len(r.passengers)) for r in asked] == [("reserve", 2), ("reserve", 2)]
    check_sent_as_the_contract(asked)


def test_a_cancellation_releases_in_the_contracts_json() -> None:
    order = confirmed_order("LOUNGE-1", "FASTTRACK-1", passengers=2)
    released = decide(order, cancel(order), at(NOW)).requests
    assert [r.type for r in released] == ["release", "release"]
    check_sent_as_the_contract(released)


def test_a_name_wider_than_todays_limit_is_still_sent() -> None:
    """Orders created under an older, wider limit still get their capacity released (not validated again)."""
    wide = ReleaseRequest(
        request_id="r",
        order_id="ORD-1",
        reservation_id="acme/ORD-1/ITEM-1",
        resource_id="LOUNGE-1",
        passengers=[Passenger("PAX-1", "A" * 200)],
        reason="ORDER_CANCELLED",
    )
    assert msgspec.json.decode(wide.to_json())["passengers"][0]["name"] == "A" * 200
