"""The contract's limits: every order inside them can be carried everywhere, and one just over is refused."""

import json
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import Enum
from typing import TypeVar

import pydantic_core
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts import limits
from contracts.base import Passenger
from contracts.commands import (
    CancelOrder,
    CreatePrebooking,
    PrebookingItem,
    RedeemOrder,
)
from contracts.events import CommandRejected, OrderItemView, OrderStatusChanged, OrderView, ServiceView
from contracts.resources import ReservationConfirmed, ReservationFailed
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
from service.api.app import MAX_BODY_BYTES
from service.config import RelaySettings, Settings
from service.domain.decide import Context, decide
from service.domain.order import Order
from service.domain.policy import Policy

NOW = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)
RELAY_DEFAULT = RelaySettings.model_fields["relay_max_request_bytes"].default
CANDIDATES = [chr(c) for c in range(0x100)] + ["\u2028", "\ufeff", "\uffff", "\U0001f600", "\U0010ffff"]
"""Every kind of character JSON treats differently: controls, quote, backslash, DEL, C1, and the longer
UTF-8 encodings."""


def _json_bytes(character: str) -> int:
    return len(pydantic_core.to_json(character)) - 2


def _widest(accepts: Callable[[str], object]) -> str:
    """The character that is longest in the service's JSON among those a field accepts."""
    accepted = []
    for character in CANDIDATES:
        try:
            accepts(character)
        except ValidationError:
            continue
        accepted.append(character)
    return max(accepted, key=_json_bytes)


NAME = _widest(lambda c: Passenger(passenger_id="P", name=c))
REASON = _widest(lambda c: CancelOrder(command_id="c", client_id="c", order_id="o", reason=c))
REASON_CODE = _widest(
    lambda c: ReservationFailed(reply_id="r", order_id="o", reservation_id="o/i", reason_code=c, reason="")
)
BOOKING_REFERENCE = _widest(
    lambda c: ReservationConfirmed(reply_id="r", order_id="o", reservation_id="o/i", booking_reference=c)
)


E = TypeVar("E", bound=Enum)


def _longest(enum: type[E]) -> E:
    return max(enum, key=lambda member: len(str(member.value)))


def test_text_fields_refuse_the_characters_json_escapes_widest() -> None:
    """Names, reasons and booking references hold no control character (6 bytes as `\\u0000`), so each of
    their characters is at most 4 bytes; the operator's unrestricted reason code is counted at 6."""
    assert [_json_bytes(c) for c in (NAME, REASON, BOOKING_REFERENCE)] == [4, 4, 4]
    assert _json_bytes(REASON_CODE) == 6
    CancelOrder(command_id="c", client_id="c", order_id="o", reason="two\nlines\tand a tab")


def _worst_event(reason: str) -> OrderStatusChanged:
    service = ServiceView(
        service_id="S" * limits.MAX_SERVICE_ID_LENGTH,
        passenger_id="P" * limits.MAX_PASSENGER_ID_LENGTH,
        passenger_name=NAME * limits.MAX_NAME_LENGTH,
        status=_longest(ServiceStatus),
        delivery_status=_longest(DeliveryStatus),
    )
    per_item = limits.MAX_SERVICES_PER_ORDER // limits.MAX_ITEMS_PER_ORDER
    item = OrderItemView(
        order_item_id="I" * limits.MAX_ORDER_ITEM_ID_LENGTH,
        resource_id="R" * limits.MAX_IDENTIFIER_LENGTH,
        product_type=_longest(ProductType),
        service_date="2026-12-24",
        status=_longest(OrderItemStatus),
        booking_reference=BOOKING_REFERENCE * limits.MAX_BOOKING_REFERENCE_LENGTH,
        services=[service] * per_item,
    )
    return OrderStatusChanged(
        event_id=str(uuid.uuid4()),
        order_id="O" * limits.MAX_IDENTIFIER_LENGTH,
        client_id="C" * limits.MAX_CLIENT_ID_LENGTH,
        order_type=_longest(OrderType),
        sequence=10**6,  # far more events than an order can have: one per item or service at most, and two
        status=OrderStatus.FAILED,
        status_name=max((s.label for s in OrderStatus), key=len),
        previous_status=OrderStatus.FAILED,
        reason=reason,
        occurred_at=NOW,
        order=OrderView(status=_longest(OneOrderStatus), items=[item] * limits.MAX_ITEMS_PER_ORDER),
    )


@pytest.mark.parametrize(
    "reason",
    [REASON * limits.MAX_REASON_LENGTH, REASON_CODE * limits.MAX_REASON_CODE_LENGTH],
    ids=["cancel-reason", "operator-reason-code"],
)
def test_the_largest_event_is_within_max_event_bytes_and_the_relay_limit(reason: str) -> None:
    """Every field at its longest, in its widest characters, every item and service there can be: the
    bound holds, is tight (within 2 %, so a new field cannot hide in it), and fits the relay's default."""
    size = len(_worst_event(reason).model_dump_json().encode())
    assert size <= limits.MAX_EVENT_BYTES <= RELAY_DEFAULT
    if reason.startswith(REASON):
        assert size > 0.98 * limits.MAX_EVENT_BYTES


def test_the_largest_rejection_is_within_max_event_bytes() -> None:
    """The longest rejection message lists the unknown services a redeem named: still far within the bound."""
    order = _created(_worst_command(NAME))
    unknown = [
        f"X{n:03d}".ljust(limits.MAX_IDENTIFIER_LENGTH, "x") for n in range(limits.MAX_SERVICES_PER_ORDER)
    ]
    redeem = RedeemOrder(
        command_id="c" * 128, client_id=order.client_id, order_id=order.order_id, service_ids=unknown
    )
    confirmed = _confirm_all(order)
    rejection = decide(confirmed, redeem, Context(NOW, Policy())).rejection
    assert isinstance(rejection, CommandRejected) and rejection.code is RejectionCode.UNKNOWN_SERVICE
    assert len(rejection.model_dump_json().encode()) <= limits.MAX_EVENT_BYTES


def _worst_command(name_character: str) -> CreatePrebooking:
    per_item = limits.MAX_SERVICES_PER_ORDER // limits.MAX_ITEMS_PER_ORDER
    return CreatePrebooking(
        command_id="K" * limits.MAX_IDENTIFIER_LENGTH,
        client_id="C" * limits.MAX_CLIENT_ID_LENGTH,
        order_id="O" * limits.MAX_IDENTIFIER_LENGTH,
        items=[
            PrebookingItem(
                order_item_id=f"{n:02d}".ljust(limits.MAX_ORDER_ITEM_ID_LENGTH, "I"),
                resource_id="R" * limits.MAX_IDENTIFIER_LENGTH,
                product_type=_longest(ProductType),
                service_date=date(2026, 12, 24),
                passengers=[
                    Passenger(
                        passenger_id=f"{p:02d}".ljust(limits.MAX_PASSENGER_ID_LENGTH, "P"),
                        name=name_character * limits.MAX_NAME_LENGTH,
                    )
                    for p in range(per_item)
                ],
            )
            for n in range(limits.MAX_ITEMS_PER_ORDER)
        ],
    )


def test_the_largest_command_fits_the_api_body_and_kafka_input_limits() -> None:
    """Even with every non-ASCII character escaped (Python's json.dumps), a command inside the limits is
    within MAX_COMMAND_BYTES, which the API's body limit and the default ORDERS_MAX_MESSAGE_BYTES exceed."""
    command = _worst_command("\U0010ffff").model_dump(mode="json")
    size = len(json.dumps(command, separators=(",", ":")).encode())
    default_input_limit = Settings.model_fields["max_message_bytes"].default
    assert 0.98 * limits.MAX_COMMAND_BYTES < size <= limits.MAX_COMMAND_BYTES
    assert min(MAX_BODY_BYTES, default_input_limit) >= limits.MAX_COMMAND_BYTES


def _created(command: CreatePrebooking) -> Order:
    decision = decide(None, command, Context(NOW, Policy()))
    assert decision.order is not None, decision.rejection
    return decision.order


def _confirm_all(order: Order, references: list[str] | None = None) -> Order:
    for n, item in enumerate(order.items):
        assert item.reservation_id is not None
        reply = ReservationConfirmed(
            reply_id=f"r{n}",
            order_id=order.order_id,
            reservation_id=item.reservation_id,
            booking_reference=references[n] if references else None,
        )
        decision = decide(order, reply, Context(NOW, Policy()))
        assert decision.order is not None
        order = decision.order
    return order


_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"


def _identifiers(max_size: int) -> st.SearchStrategy[str]:
    first = st.sampled_from(_ID_ALPHABET[:62])
    rest = st.text(alphabet=_ID_ALPHABET, max_size=max_size - 1)
    return st.builds(lambda a, b: a + b, first, rest)


def _client_ids() -> st.SearchStrategy[str]:
    first = st.sampled_from(_ID_ALPHABET[:62])
    rest = st.text(alphabet=_ID_ALPHABET[:62] + "-", max_size=limits.MAX_CLIENT_ID_LENGTH - 1)
    return st.builds(lambda a, b: a + b, first, rest)


def _text(max_size: int, line_breaks: bool = False) -> st.SearchStrategy[str]:
    characters = st.characters(
        exclude_categories=["Cc", "Cs"], include_characters="\t\n\r" if line_breaks else ""
    )
    return st.text(alphabet=characters, min_size=1, max_size=max_size)


@st.composite
def _orders(draw: st.DrawFn) -> tuple[CreatePrebooking, list[str], str]:
    """An order inside the limits (its sizes and ids of any length allowed), its items' booking references
    and a cancellation reason."""
    item_count = draw(st.integers(1, limits.MAX_ITEMS_PER_ORDER))
    budget = limits.MAX_SERVICES_PER_ORDER - item_count
    items = []
    for n in range(item_count):
        extra = draw(st.integers(0, min(limits.MAX_PASSENGERS_PER_ITEM - 1, budget)))
        budget -= extra
        prefix = draw(_identifiers(limits.MAX_PASSENGER_ID_LENGTH - 2))
        passengers = [
            Passenger(passenger_id=f"{prefix}{p:02d}", name=draw(_text(limits.MAX_NAME_LENGTH)))
            for p in range(extra + 1)
        ]
        item_id = f"{n:02d}{draw(_identifiers(limits.MAX_ORDER_ITEM_ID_LENGTH - 2))}"
        items.append(
            PrebookingItem(
                order_item_id=item_id,
                resource_id=draw(_identifiers(limits.MAX_IDENTIFIER_LENGTH)),
                product_type=draw(st.sampled_from(ProductType)),
                service_date=date(2026, 12, 24),
                passengers=passengers,
            )
        )
    command = CreatePrebooking(
        command_id=draw(_identifiers(limits.MAX_IDENTIFIER_LENGTH)),
        client_id=draw(_client_ids()),
        order_id=draw(_identifiers(limits.MAX_IDENTIFIER_LENGTH)),
        items=items,
    )
    references = [draw(_text(limits.MAX_BOOKING_REFERENCE_LENGTH)) for _ in items]
    return command, references, draw(_text(limits.MAX_REASON_LENGTH, line_breaks=True))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(_orders())
def test_no_order_inside_the_limits_yields_an_event_over_the_relay_limit_or_an_unnameable_service(
    drawn: tuple[CreatePrebooking, list[str], str],
) -> None:
    """Created, confirmed with booking references and cancelled with a reason: every event is within
    MAX_EVENT_BYTES, and every service id is an identifier a redeem_order can name."""
    command, references, reason = drawn
    context = Context(NOW, Policy())
    created = decide(None, command, context)
    assert created.order is not None
    confirmed = _confirm_all(created.order, references)
    cancel = CancelOrder(
        command_id="c", client_id=command.client_id, order_id=command.order_id, reason=reason
    )
    cancelled = decide(confirmed, cancel, context)
    events = [*created.events, *cancelled.events]
    assert events[-1].status is OrderStatus.CANCELLED
    assert all(len(event.to_json()) <= limits.MAX_EVENT_BYTES for event in events)
    service_ids = [s.service_id for item in confirmed.items for s in item.services]
    assert max(map(len, service_ids)) <= limits.MAX_SERVICE_ID_LENGTH <= limits.MAX_IDENTIFIER_LENGTH
    RedeemOrder(
        command_id="r", client_id=command.client_id, order_id=command.order_id, service_ids=service_ids
    )


def test_the_relay_refuses_a_request_limit_below_the_largest_event() -> None:
    """ORDERS_RELAY_MAX_REQUEST_BYTES below MAX_EVENT_BYTES would make some orders' webhooks undeliverable."""
    RelaySettings(relay_max_request_bytes=limits.MAX_EVENT_BYTES)
    with pytest.raises(ValidationError, match="MAX_EVENT_BYTES"):
        RelaySettings(relay_max_request_bytes=limits.MAX_EVENT_BYTES - 1)
