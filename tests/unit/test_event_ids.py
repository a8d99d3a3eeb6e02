"""Event ids are uuid5s of their order and sequence: the fast derivation must give exactly the standard one,
or an upgrade would publish a re-sent event under a new id."""

import uuid

from hypothesis import given
from hypothesis import strategies as st

from service.domain.outcome import _EVENT_NAMESPACE, event_id_for


@given(st.text())
def test_event_ids_are_the_standard_uuid5_of_their_name(name: str) -> None:
    assert event_id_for(name) == str(uuid.uuid5(_EVENT_NAMESPACE, name))


def test_a_known_event_id_is_unchanged() -> None:
    """The id the first status event of ORD-1 has always had."""
    assert event_id_for("ORD-1/1") == "91ddef0b-f15a-5086-84e5-af5677a16e86"
