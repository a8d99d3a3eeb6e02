"""Tolerant replies, strict but answered commands, and repeated JSON keys, on the real broker and Redis."""

import base64
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from contracts.events import DeadLetter
from contracts.statuses import OrderStatus, RejectionCode
from service.app import OrderService
from service.config import Settings
from testkit.factories import prebooking, unique
from testkit.kafka_tap import TopicTap, produce
from tests.integration.conftest import SILENT_RESOURCE
from tests.integration.observe import Observer
from tests.waiting import counter, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("simulator", "service")]


@pytest.fixture
def observe(tap: TopicTap, settings: Settings) -> Observer:
    return Observer(tap, settings)


def dead_letters(observe: Observer, key: str) -> list[DeadLetter]:
    wanted = base64.b64encode(key.encode()).decode()
    return observe.tap.decoded(observe.settings.topic_dead_letter, DeadLetter, lambda d: d.key == wanted)


async def dead_letter(observe: Observer, key: str) -> DeadLetter:
    [letter] = await observe.tap.wait_for(lambda: dead_letters(observe, key))
    return letter


def confirmation(order_id: str, reply_id: str | None = None, **fields: Any) -> bytes:
    """A `confirmed` reply for the order's only item, with any fields added."""
    reply = {
        "type": "confirmed",
        "reply_id": reply_id or unique("op"),
        "order_id": order_id,
        "reservation_id": f"client-a/{order_id}/ITEM-1",
    }
    return json.dumps({**reply, **fields}).encode()


async def pending_order(observe: Observer, producer: AIOKafkaProducer) -> str:
    """A prebooking at a resource that never answers, Pending: its replies are the test's to send."""
    command = prebooking(SILENT_RESOURCE)
    await produce(producer, observe.settings.topic_commands, command, command.order_id)
    await observe.status(command.order_id, OrderStatus.PENDING)
    return command.order_id


def unknown_fields(field: str) -> float:
    return counter("orders_reply_unknown_fields_total", type="confirmed", field=field)


async def test_a_confirmation_with_unknown_fields_confirms_the_order_and_counts_them(
    observe: Observer, producer: AIOKafkaProducer
) -> None:
    """The operator's own fields are ignored and counted by name; re-sent with one more, it is a duplicate."""
    order_id = await pending_order(observe, producer)
    before = unknown_fields("lounge_ref"), unknown_fields("note")
    duplicates = counter("orders_inputs_duplicate_total", kind="reply")
    conflicts = counter("orders_reply_anomalies_total", anomaly="REPLY_ID_CONFLICT")
    reply = confirmation(order_id, "op-1-" + order_id, lounge_ref="LX-77", note="window seat")

    await produce(producer, observe.settings.topic_resource_replies, reply, order_id)

    events = await observe.status(order_id, OrderStatus.CONFIRMED, sequence=2)
    assert [e.status for e in events] == [OrderStatus.PENDING, OrderStatus.CONFIRMED]
    await eventually(
        lambda: (unknown_fields("lounge_ref"), unknown_fields("note")) == (before[0] + 1, before[1] + 1)
    )

    again = confirmation(order_id, "op-1-" + order_id, lounge_ref="LX-77", note="window seat", at="09:30")
    await produce(producer, observe.settings.topic_resource_replies, again, order_id)

    await eventually(lambda: counter("orders_inputs_duplicate_total", kind="reply") > duplicates)
    assert counter("orders_reply_anomalies_total", anomaly="REPLY_ID_CONFLICT") == conflicts
    assert [e.sequence for e in await observe.settled_events(order_id)] == [1, 2]


async def test_a_confirmation_with_a_wrong_type_in_a_required_field_is_still_dead_lettered(
    observe: Observer, producer: AIOKafkaProducer
) -> None:
    """Tolerance stops at fields the contract names: `reply_id` as a number refuses the reply."""
    order_id = await pending_order(observe, producer)
    broken = json.loads(confirmation(order_id, lounge_ref="LX-77"))
    broken["reply_id"] = 42

    await produce(producer, observe.settings.topic_resource_replies, json.dumps(broken).encode(), order_id)

    letter = await dead_letter(observe, order_id)
    assert (letter.source_topic, letter.error_type) == (observe.settings.topic_resource_replies, "SCHEMA")
    assert "reply_id" in letter.error
    # The partition moves on: the next reply confirms the order, as the second event.
    await produce(producer, observe.settings.topic_resource_replies, confirmation(order_id), order_id)
    await observe.status(order_id, OrderStatus.CONFIRMED, sequence=2)


async def test_an_invalid_command_with_a_readable_envelope_is_answered_and_claims_nothing(
    observe: Observer, producer: AIOKafkaProducer, service: OrderService
) -> None:
    """INVALID_COMMAND with the field errors and no input values, not dead-lettered, no order; the client
    fixes the command and sends it again under the same command_id, and that one is carried out."""
    command = prebooking()
    body = command.model_dump(mode="json")
    body["items"][0]["service_date"] = 20261224
    body["items"][0]["passengers"][0]["name"] = True
    body["seat_preference"] = "Ada window"

    await produce(producer, observe.settings.topic_commands, json.dumps(body).encode(), command.order_id)

    rejected = await observe.rejection(command.order_id, command.command_id)
    assert (rejected.code, rejected.command_type) == (RejectionCode.INVALID_COMMAND, "create_prebooking")
    assert [e.loc for e in rejected.errors or []] == [
        ["items", 0, "service_date"],
        ["items", 0, "passengers", 0, "name"],
        ["seat_preference"],
    ]
    raw = [r.value for r in observe.tap.records[observe.settings.topic_command_rejected]]
    assert not any(b"Ada" in value or b"20261224" in value for value in raw)
    assert await service.store.get(command.client_id, command.order_id) is None

    await produce(producer, observe.settings.topic_commands, command, command.order_id)

    await observe.status(command.order_id, OrderStatus.CONFIRMED)
    answers = {(r.event_id, r.code) for r in observe.rejections(command.order_id)}
    assert answers == {(rejected.event_id, RejectionCode.INVALID_COMMAND)}
    assert dead_letters(observe, command.order_id) == []


async def test_invalid_commands_change_no_order_whether_answered_or_dead_lettered(
    observe: Observer, producer: AIOKafkaProducer, service: OrderService
) -> None:
    """A cancellation with `order_item_ids` as a string is answered; one with a bad command_id is
    dead-lettered: the confirmed order stays as it was after both."""
    command = prebooking()
    await produce(producer, observe.settings.topic_commands, command, command.order_id)
    await observe.status(command.order_id, OrderStatus.CONFIRMED)
    cancel = {"type": "cancel_order", "client_id": command.client_id, "order_id": command.order_id}
    answered = {**cancel, "command_id": unique("cmd"), "order_item_ids": "ITEM-1"}
    unreadable = {**cancel, "command_id": "not an id"}

    for body in (answered, unreadable):
        await produce(producer, observe.settings.topic_commands, json.dumps(body).encode(), command.order_id)

    rejected = await observe.rejection(command.order_id, answered["command_id"])
    assert [(e.loc, e.message) for e in rejected.errors or []] == [
        (["order_item_ids"], "Input should be a valid list")
    ]
    letter = await dead_letter(observe, command.order_id)
    assert (letter.error_type, json.loads(base64.b64decode(letter.value))) == ("SCHEMA", unreadable)
    stored = await service.store.get(command.client_id, command.order_id)
    assert stored is not None and stored.status is OrderStatus.CONFIRMED
    assert [e.sequence for e in await observe.settled_events(command.order_id)] == [1, 2]


async def test_a_repeated_key_is_dead_lettered_on_both_topics(
    observe: Observer, producer: AIOKafkaProducer, service: OrderService
) -> None:
    """A command naming its client twice and a reply naming its reservation twice are refused as SCHEMA,
    with the key named; neither is resolved to one of the values."""
    command = prebooking(SILENT_RESOURCE)
    text = command.model_dump_json()
    twice = text.replace(
        f'"client_id":"{command.client_id}"', f'"client_id":"{command.client_id}","client_id":"b"'
    )
    await produce(producer, observe.settings.topic_commands, twice.encode(), command.order_id)

    letter = await dead_letter(observe, command.order_id)
    assert (letter.source_topic, letter.error_type) == (observe.settings.topic_commands, "SCHEMA")
    assert 'duplicate key "client_id"' in letter.error
    assert await service.store.get(command.client_id, command.order_id) is None

    order_id = await pending_order(observe, producer)
    reply = confirmation(order_id).replace(b'"reservation_id"', b'"reservation_id": "x", "reservation_id"')
    await produce(producer, observe.settings.topic_resource_replies, reply, order_id)

    letter = await dead_letter(observe, order_id)
    assert (letter.source_topic, letter.error_type) == (observe.settings.topic_resource_replies, "SCHEMA")
    assert 'duplicate key "reservation_id"' in letter.error
    assert OrderStatus.CONFIRMED not in [e.status for e in await observe.settled_events(order_id)]
