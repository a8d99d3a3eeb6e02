"""Duplicates, rejections, stray replies and malformed input: each gets a clear answer, none blocks."""

import base64
import json

import pytest
from aiokafka import AIOKafkaProducer

from contracts.commands import CancelOrder
from contracts.events import CommandRejected, DeadLetter, OrderStatusChanged
from contracts.resources import ReservationConfirmed
from contracts.statuses import OrderStatus, ProductType, RejectionCode
from service.app import OrderService
from service.config import Settings
from testkit.factories import SERVICE_DATE, prebooking, unique
from testkit.kafka_tap import TopicTap, produce
from tests.integration.observe import Observer
from tests.waiting import counter, eventually

pytestmark = pytest.mark.usefixtures("simulator", "service")


def events_of(tap: TopicTap, settings: Settings, order_id: str) -> list[OrderStatusChanged]:
    """Distinct events (by event_id): a producer retry may deliver one twice, which the contract allows;
    a replay that emitted anything new would still show as another sequence number."""
    return Observer(tap, settings).events(order_id)


def rejections_of(tap: TopicTap, settings: Settings, order_id: str) -> list[CommandRejected]:
    return tap.decoded(settings.topic_command_rejected, CommandRejected, lambda r: r.order_id == order_id)


def dead_letters(tap: TopicTap, settings: Settings, key: str) -> list[DeadLetter]:
    wanted = base64.b64encode(key.encode()).decode()
    return tap.decoded(settings.topic_dead_letter, DeadLetter, lambda d: d.key == wanted)


async def confirmed(tap: TopicTap, settings: Settings, order_id: str) -> list[OrderStatusChanged]:
    def final() -> list[OrderStatusChanged] | None:
        events = events_of(tap, settings, order_id)
        return events if events and events[-1].status is OrderStatus.CONFIRMED else None

    return await tap.wait_for(final)


async def test_replayed_command_changes_nothing_and_emits_nothing(
    settings: Settings, tap: TopicTap, producer: AIOKafkaProducer
) -> None:
    """The same command_id twice: one order, one event stream; a later command shows it was processed."""
    command = prebooking()
    await produce(producer, settings.topic_commands, command, command.order_id)
    await confirmed(tap, settings, command.order_id)

    await produce(producer, settings.topic_commands, command, command.order_id)
    # A sentinel on the same key (same partition) is processed only after the replay was.
    sentinel = prebooking(order_id=command.order_id)
    await produce(producer, settings.topic_commands, sentinel, command.order_id)
    rejected = await tap.wait_for(lambda: rejections_of(tap, settings, command.order_id))

    assert [r.command_id for r in rejected] == [sentinel.command_id]
    assert rejected[0].code is RejectionCode.ORDER_ALREADY_EXISTS
    assert [e.sequence for e in events_of(tap, settings, command.order_id)] == [1, 2]


async def test_reused_command_id_with_other_payload_is_an_idempotency_conflict(
    settings: Settings, tap: TopicTap, producer: AIOKafkaProducer
) -> None:
    """A command_id reused for a different command is refused with IDEMPOTENCY_CONFLICT."""
    command = prebooking()
    await produce(producer, settings.topic_commands, command, command.order_id)
    await confirmed(tap, settings, command.order_id)
    changed = command.model_copy(update={"items": prebooking("RES-OTHER").items})
    await produce(producer, settings.topic_commands, changed, command.order_id)

    rejected = await tap.wait_for(lambda: rejections_of(tap, settings, command.order_id))

    assert [(r.command_id, r.code) for r in rejected] == [
        (command.command_id, RejectionCode.IDEMPOTENCY_CONFLICT)
    ]
    assert len(events_of(tap, settings, command.order_id)) == 2


async def test_other_clients_order_cannot_be_touched(
    settings: Settings, tap: TopicTap, producer: AIOKafkaProducer, service: OrderService
) -> None:
    """A command naming another client's order is answered exactly like one naming a missing order."""
    command = prebooking(client_id="client-a")
    await produce(producer, settings.topic_commands, command, command.order_id)
    await confirmed(tap, settings, command.order_id)
    intruder = CancelOrder(command_id=unique("cmd"), client_id="client-b", order_id=command.order_id)
    await produce(producer, settings.topic_commands, intruder, command.order_id)

    rejected = await tap.wait_for(lambda: rejections_of(tap, settings, command.order_id))

    assert [(r.client_id, r.code) for r in rejected] == [("client-b", RejectionCode.ORDER_NOT_FOUND)]
    stored = await service.store.get(command.client_id, command.order_id)
    assert stored is not None and stored.status is OrderStatus.CONFIRMED


async def test_replayed_and_stray_replies_change_nothing(
    settings: Settings, tap: TopicTap, producer: AIOKafkaProducer
) -> None:
    """A confirmation delivered again (same reply_id) and a reply for an unknown order are only counted."""
    command = prebooking()
    await produce(producer, settings.topic_commands, command, command.order_id)
    await confirmed(tap, settings, command.order_id)
    duplicates = counter("orders_inputs_duplicate_total", kind="reply")
    unknown = counter("orders_reply_anomalies_total", anomaly="UNKNOWN_ORDER")

    reply = ReservationConfirmed(
        # the simulator's id for this reservation
        reply_id=f"{command.client_id}/{command.order_id}/ITEM-1/reserve/reply",
        order_id=command.order_id,
        reservation_id=f"{command.client_id}/{command.order_id}/ITEM-1",
    )
    await produce(producer, settings.topic_resource_replies, reply, command.order_id)
    stray = ReservationConfirmed(reply_id=unique("r"), order_id=unique("ORD"), reservation_id="nope/ITEM-1")
    await produce(producer, settings.topic_resource_replies, stray, stray.order_id)

    await eventually(lambda: counter("orders_inputs_duplicate_total", kind="reply") > duplicates)
    await eventually(lambda: counter("orders_reply_anomalies_total", anomaly="UNKNOWN_ORDER") > unknown)
    assert [e.sequence for e in events_of(tap, settings, command.order_id)] == [1, 2]


@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        (b"\x00\xffnot json at all", "NOT_JSON"),
        (b'{"type": "create_prebooking", "command_id": "c"', "NOT_JSON"),
        (b'{"type": "teleport_passenger", "command_id": "c", "client_id": "a", "order_id": "K"}', "SCHEMA"),
        (
            b'{"type": "create_prebooking", "command_id": "c", "client_id": "a", "order_id": "K", '
            b'"items": []}',
            "SCHEMA",
        ),
        (b'{"type": "cancel_order", "command_id": "c", "client_id": "a", "order_id": "K", "x": 1}', "SCHEMA"),
        (b"[" + b"1," * 40_000 + b"1]", "TOO_LARGE"),
    ],
    ids=["garbage", "truncated", "unknown-type", "no-items", "unknown-field", "oversized"],
)
async def test_malformed_input_is_dead_lettered_and_the_partition_moves_on(
    settings: Settings, tap: TopicTap, producer: AIOKafkaProducer, value: bytes, error_type: str
) -> None:
    """Bad bytes are dead-lettered with the reason and the original bytes; the next message is served."""
    key = unique("ORD")
    await produce(producer, settings.topic_commands, value, key)
    follower = prebooking(order_id=key)
    await produce(producer, settings.topic_commands, follower, key)

    [letter] = await tap.wait_for(lambda: dead_letters(tap, settings, key))
    await confirmed(tap, settings, key)

    assert letter.error_type == error_type
    assert letter.source_topic == settings.topic_commands
    kept = value[: settings.max_message_bytes]
    assert (base64.b64decode(letter.value), letter.value_truncated) == (kept, len(value) > len(kept))
    assert letter.error


async def test_key_that_is_not_the_order_id_is_dead_lettered(
    settings: Settings, tap: TopicTap, producer: AIOKafkaProducer
) -> None:
    """Per-order ordering depends on the key, so a message keyed otherwise is refused, not applied."""
    command = prebooking()
    key = unique("WRONG")
    await produce(producer, settings.topic_commands, command, key)

    [letter] = await tap.wait_for(lambda: dead_letters(tap, settings, key))

    assert letter.error_type == "SCHEMA"
    assert "order_id" in letter.error
    assert events_of(tap, settings, command.order_id) == []


async def test_command_id_reused_for_another_order_is_an_idempotency_conflict(
    settings: Settings, tap: TopicTap, producer: AIOKafkaProducer, service: OrderService
) -> None:
    """A client's command_id is claimed by its first payload across all orders, not per order."""
    command = prebooking()
    await produce(producer, settings.topic_commands, command, command.order_id)
    await confirmed(tap, settings, command.order_id)
    elsewhere = prebooking(order_id=unique("ORD")).model_copy(update={"command_id": command.command_id})

    await produce(producer, settings.topic_commands, elsewhere, elsewhere.order_id)

    [rejected] = await tap.wait_for(lambda: rejections_of(tap, settings, elsewhere.order_id))
    assert (rejected.command_id, rejected.code) == (command.command_id, RejectionCode.IDEMPOTENCY_CONFLICT)
    assert await service.store.get(elsewhere.client_id, elsewhere.order_id) is None


def _create(order_id: str, items: list[dict[str, object]]) -> bytes:
    command = {"type": "create_prebooking", "command_id": unique("cmd"), "client_id": "client-a"}
    return json.dumps({**command, "order_id": order_id, "items": items}).encode()


def _item(passengers: int = 1, **fields: object) -> dict[str, object]:
    people = [{"passenger_id": f"PAX-{n}", "name": "Ada"} for n in range(passengers)]
    return {
        "resource_id": "RES-OK",
        "product_type": "LOUNGE",
        "service_date": SERVICE_DATE.isoformat(),
        "passengers": people,
    } | fields


async def test_an_order_id_with_a_slash_is_dead_lettered_and_creates_nothing(
    settings: Settings, tap: TopicTap, producer: AIOKafkaProducer, service: OrderService
) -> None:
    """`GET /v1/orders/{id}` could never reach such an order, so the contract refuses the id everywhere."""
    order_id = f"{unique('ORD')}/1"
    await produce(producer, settings.topic_commands, _create(order_id, [_item()]), order_id)

    [letter] = await tap.wait_for(lambda: dead_letters(tap, settings, order_id))
    assert letter.error_type == "SCHEMA" and "order_id" in letter.error
    assert await service.store.get("client-a", order_id) is None


@pytest.mark.parametrize(
    "items",
    [
        [_item(50), _item(50), _item(1)],
        [_item(order_item_id="ITEM/1")],
        [_item(order_item_id="I" * 33)],
        [_item() | {"passengers": [{"passenger_id": "P" * 65, "name": "Ada"}]}],
        [_item() | {"passengers": [{"passenger_id": "PAX-1", "name": "N" * 101}]}],
    ],
    ids=["101-services", "slash-in-item-id", "long-item-id", "long-passenger-id", "long-name"],
)
async def test_a_command_over_a_limit_is_refused_and_creates_nothing(
    settings: Settings, tap: TopicTap, producer: AIOKafkaProducer, items: list[dict[str, object]]
) -> None:
    """A create just over a limit fails the schema: refused, and the order id stays free for a good one."""
    order_id = unique("ORD")
    await produce(producer, settings.topic_commands, _create(order_id, items), order_id)
    follower = prebooking(order_id=order_id)
    await produce(producer, settings.topic_commands, follower, order_id)

    # Its envelope is readable, so its sender is answered: INVALID_COMMAND with the field errors.
    def refused() -> bool:
        rejected = [r for r in rejections_of(tap, settings, order_id) if r.command_id != follower.command_id]
        return any(r.code is RejectionCode.INVALID_COMMAND and r.errors for r in rejected)

    await tap.wait_for(refused)
    assert not dead_letters(tap, settings, order_id), "an answered command is not dead-lettered too"
    # The order is the follower's (one FAST_TRACK item; the refused command's were LOUNGE): it was free.
    [pending, _] = await confirmed(tap, settings, order_id)
    assert [i.product_type for i in pending.order.items] == [ProductType.FAST_TRACK]
