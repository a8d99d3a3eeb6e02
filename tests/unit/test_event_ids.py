"""Event ids are uuid5s of their client, order and sequence: the fast derivation must give exactly the
standard one, or an upgrade would publish a re-sent event under a new id; and two clients' orders under one
order id (ids are scoped per client) must not share event ids."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from service.domain.decide import decide
from service.domain.outcome import _EVENT_NAMESPACE, event_id_for
from testkit.factories import prebooking
from tests.unit.test_lifecycle_decisions import NOW, at


@given(st.text())
def test_event_ids_are_the_standard_uuid5_of_their_name(name: str) -> None:
    assert event_id_for(name) == str(uuid.uuid5(_EVENT_NAMESPACE, name))


def test_a_known_event_id_is_unchanged() -> None:
    """The id the first status event of client-a's ORD-1 has had since order ids are scoped per client."""
    assert event_id_for("client-a/ORD-1/1") == "c1eb89cc-c56a-565f-b7ef-218a2f888857"


def test_two_clients_orders_under_one_order_id_get_different_event_ids() -> None:
    """A consumer deduplicating on `event_id`, as the contract asks, must keep both clients' events: one
    client choosing another's order id must not make the other's events look like repeats."""
    mine = decide(None, prebooking("RES-1", client_id="client-a", order_id="ORD-1"), at(NOW))
    theirs = decide(None, prebooking("RES-1", client_id="client-b", order_id="ORD-1"), at(NOW))

    assert [e.sequence for e in mine.events] == [e.sequence for e in theirs.events] == [1]
    assert mine.events[0].event_id != theirs.events[0].event_id
    assert mine.events[0].event_id == event_id_for("client-a/ORD-1/1")
