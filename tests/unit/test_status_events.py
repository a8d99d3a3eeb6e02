"""The status events the domain builds (`service.domain.status_event`) are the contract's
`OrderStatusChanged`, byte for byte. `check_published_as_the_contract` also runs on every event of the
random lifecycles in `test_lifecycle_properties.py`."""

import msgspec
import pytest
from pydantic import BaseModel

from contracts.commands import CancelOrder
from contracts.events import OrderItemView, OrderStatusChanged, OrderView, ServiceView
from contracts.statuses import OrderStatus
from service.domain.decide import decide
from service.domain.order import Order
from service.domain.status_event import (
    OrderItemViewData,
    OrderViewData,
    ServiceViewData,
    StatusEvent,
    order_view,
)
from tests.unit.test_lifecycle_decisions import NOW, at, confirmed_order


def check_published_as_the_contract(events: list[StatusEvent], order: Order | None) -> None:
    """Each event encodes to what pydantic gives for the same content (so field order, formats and types
    are the contract's), and the last one carries the ONE Order view the API derives for the order."""
    for event in events:
        published = event.to_json()
        assert OrderStatusChanged.model_validate_json(published).model_dump_json().encode() == published
    if events and order is not None:
        view = OrderView.model_validate(msgspec.to_builtins(events[-1].order))
        assert view == order_view(order)


@pytest.mark.parametrize(
    ("struct", "model"),
    [
        (StatusEvent, OrderStatusChanged),
        (OrderViewData, OrderView),
        (OrderItemViewData, OrderItemView),
        (ServiceViewData, ServiceView),
    ],
)
def test_the_structs_have_the_contracts_fields_in_its_order(
    struct: type[msgspec.Struct], model: type[BaseModel]
) -> None:
    """A field added to the contract fails here until the struct has it too."""
    assert struct.__struct_fields__ == tuple(model.model_fields)


def test_a_cancellation_event_is_the_contracts_json() -> None:
    order = confirmed_order("A", "B", passengers=2)
    cancel = CancelOrder(command_id="c", client_id="client-a", order_id="ORD-1", reason="CHANGE_OF_PLANS")
    decision = decide(order, cancel, at(NOW))

    [event] = decision.events
    assert (event.sequence, event.status, event.previous_status) == (3, OrderStatus.CANCELLED, 1)
    check_published_as_the_contract(decision.events, decision.order)
