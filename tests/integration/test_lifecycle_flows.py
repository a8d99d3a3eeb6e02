"""Every flow of the seeds through the real broker and Redis: walk-ins, timeouts, cancellations, redeeming."""

import pytest
from aiokafka import AIOKafkaProducer

from contracts.commands import CancelOrder, RedeemOrder
from contracts.resources import ReservationConfirmed, ReservationFailed
from contracts.statuses import OneOrderStatus, OrderStatus, RejectionCode
from service.app import OrderService
from service.config import Settings
from testkit.factories import prebooking, unique, walk_in
from testkit.kafka_tap import TopicTap, produce
from tests.integration.conftest import BOTH_LAYOUTS, SHORT_WINDOW_LOUNGE, SILENT_RESOURCE
from tests.integration.observe import Observer, commands_topic
from tests.waiting import counter, eventually

pytestmark = [pytest.mark.usefixtures("simulator"), BOTH_LAYOUTS]


@pytest.fixture
def bus(tap: TopicTap, settings: Settings) -> Observer:
    return Observer(tap, settings)


async def send(producer: AIOKafkaProducer, settings: Settings, command: object) -> None:
    topic = commands_topic(settings, command.client_id)  # type: ignore[attr-defined]
    await produce(producer, topic, command, command.order_id)  # type: ignore[arg-type, attr-defined]


async def reply(
    producer: AIOKafkaProducer, settings: Settings, message: ReservationConfirmed | ReservationFailed
) -> None:
    await produce(producer, settings.topic_resource_replies, message, message.order_id)


def confirm(order_id: str, item: str) -> ReservationConfirmed:
    return ReservationConfirmed(
        reply_id=unique("op"), order_id=order_id, reservation_id=f"client-a/{order_id}/{item}"
    )


async def test_walk_in_consumes_one_unit_per_passenger_or_is_refused(
    service: OrderService, settings: Settings, producer: AIOKafkaProducer, bus: Observer
) -> None:
    """Used (2) at once while units last; then ENTITLEMENT_EXHAUSTED; an unknown credential is refused too."""
    credential = unique("CARD")
    await service.entitlements.grant("client-a", credential, 3)
    first, second = walk_in(credential=credential, passengers=2), walk_in(credential=credential, passengers=2)
    stranger = walk_in(credential=unique("CARD"))

    await send(producer, settings, first)
    [used] = await bus.status(first.order_id, OrderStatus.USED)
    # Different orders travel on different partitions: send the others only once the first was applied.
    for command in (second, stranger):
        await send(producer, settings, command)

    assert (used.sequence, used.previous_status, used.order.status) == (1, None, OneOrderStatus.CLOSED)
    assert (
        await bus.rejection(second.order_id, second.command_id)
    ).code is RejectionCode.ENTITLEMENT_EXHAUSTED
    assert (
        await bus.rejection(stranger.order_id, stranger.command_id)
    ).code is RejectionCode.UNKNOWN_CREDENTIAL
    assert await service.entitlements.balance("client-a", credential) == 1


async def test_staff_cancellation_refunds_the_entitlement_exactly_once(
    service: OrderService, settings: Settings, producer: AIOKafkaProducer, bus: Observer
) -> None:
    """Used → Cancelled (3) by resource staff; replays of usage and cancellation refund nothing more."""
    credential = unique("CARD")
    await service.entitlements.grant("client-a", credential, 5)
    usage = walk_in(credential=credential, passengers=2)
    cancel = CancelOrder(
        command_id=unique("cmd"), client_id="client-a", order_id=usage.order_id, initiated_by="RESOURCE_STAFF"
    )
    await send(producer, settings, usage)
    await bus.status(usage.order_id, OrderStatus.USED)
    assert await service.entitlements.balance("client-a", credential) == 3

    await send(producer, settings, cancel)
    await bus.status(usage.order_id, OrderStatus.CANCELLED)
    again = cancel.model_copy(update={"command_id": unique("cmd")})
    for command in (cancel, usage, again):  # replays, then a new cancellation as the sentinel
        await send(producer, settings, command)
    assert (await bus.rejection(usage.order_id, again.command_id)).code is RejectionCode.INVALID_STATE

    assert await service.entitlements.balance("client-a", credential) == 5
    assert [(e.sequence, e.status) for e in await bus.settled_events(usage.order_id)] == [(1, 2), (2, 3)]


async def test_walk_in_cancellation_outside_the_window_is_refused(
    service: OrderService, settings: Settings, producer: AIOKafkaProducer, bus: Observer
) -> None:
    """The resource's rule decides: this lounge allows a millisecond, long gone when the command arrives."""
    credential = unique("CARD")
    await service.entitlements.grant("client-a", credential, 1)
    usage = walk_in(SHORT_WINDOW_LOUNGE, credential=credential)
    await send(producer, settings, usage)
    await bus.status(usage.order_id, OrderStatus.USED)
    cancel = CancelOrder(
        command_id=unique("cmd"), client_id="client-a", order_id=usage.order_id, initiated_by="RESOURCE_STAFF"
    )

    await send(producer, settings, cancel)

    assert (
        await bus.rejection(usage.order_id, cancel.command_id)
    ).code is RejectionCode.CANCELLATION_WINDOW_CLOSED
    assert await service.entitlements.balance("client-a", credential) == 0


async def test_unanswered_prebooking_times_out_and_late_confirmation_is_released(
    settings: Settings, producer: AIOKafkaProducer, bus: Observer
) -> None:
    """No reply in time: Failed (10) with CONFIRMATION_TIMEOUT and a release; a confirmation after that is
    compensated with another release and changes no status."""
    command = prebooking(SILENT_RESOURCE)
    await send(producer, settings, command)

    events = await bus.status(command.order_id, OrderStatus.FAILED)
    assert [(e.sequence, e.status, e.reason) for e in events] == [
        (1, 5, None),
        (2, 10, "CONFIRMATION_TIMEOUT"),
    ]
    # Unanswered is not cancelled: the view says the resource could not deliver.
    assert {s.delivery_status for i in events[-1].order.items for s in i.services} == {"UNABLE_TO_DELIVER"}
    await bus.until(lambda: bus.releases(command.order_id))

    await reply(producer, settings, confirm(command.order_id, "ITEM-1"))
    await bus.until(lambda: len(bus.releases(command.order_id)) == 2)
    assert [r.reason for r in bus.releases(command.order_id)] == ["ORDER_FAILED", "LATE_CONFIRMATION"]
    assert len(await bus.settled_events(command.order_id)) == 2


async def test_replies_out_of_order_and_repeated_confirm_the_order_once(
    settings: Settings, producer: AIOKafkaProducer, bus: Observer
) -> None:
    """Items confirmed in reverse order, one reply twice, a contradicting refusal after: Confirmed once."""
    command = prebooking(SILENT_RESOURCE, SILENT_RESOURCE)
    await send(producer, settings, command)
    await bus.status(command.order_id, OrderStatus.PENDING)
    second, first = confirm(command.order_id, "ITEM-2"), confirm(command.order_id, "ITEM-1")
    for message in (second, second, first):
        await reply(producer, settings, message)
    await bus.status(command.order_id, OrderStatus.CONFIRMED)
    anomalies = counter("orders_reply_anomalies_total", anomaly="REPLY_FOR_CONFIRMED_RESERVATION")

    refusal = ReservationFailed(
        reply_id=unique("op"),
        order_id=command.order_id,
        reservation_id=first.reservation_id,
        reason_code="X",
        reason="x",
    )
    await reply(producer, settings, refusal)

    await eventually(
        lambda: counter("orders_reply_anomalies_total", anomaly="REPLY_FOR_CONFIRMED_RESERVATION") > anomalies
    )
    assert [(e.sequence, e.status) for e in await bus.settled_events(command.order_id)] == [(1, 5), (2, 1)]


async def test_client_cancels_a_confirmed_order(
    settings: Settings, producer: AIOKafkaProducer, bus: Observer
) -> None:
    """Confirmed → Cancelled (3), and every reservation is released."""
    command = prebooking("RES-OK", "RES-OK-2")
    await send(producer, settings, command)
    await bus.status(command.order_id, OrderStatus.CONFIRMED)

    await send(
        producer,
        settings,
        CancelOrder(command_id=unique("cmd"), client_id="client-a", order_id=command.order_id),
    )

    events = await bus.status(command.order_id, OrderStatus.CANCELLED)
    assert events[-1].order.status is OneOrderStatus.CLOSED
    await bus.until(lambda: len(bus.releases(command.order_id)) == 2)
    assert {r.reason for r in bus.releases(command.order_id)} == {"ORDER_CANCELLED"}


async def test_late_confirmation_after_cancellation_is_released(
    settings: Settings, producer: AIOKafkaProducer, bus: Observer
) -> None:
    """Cancelled while Pending, then the resource confirms: a compensating release, no status change."""
    command = prebooking(SILENT_RESOURCE)
    await send(producer, settings, command)
    await bus.status(command.order_id, OrderStatus.PENDING)
    await send(
        producer,
        settings,
        CancelOrder(command_id=unique("cmd"), client_id="client-a", order_id=command.order_id),
    )
    await bus.status(command.order_id, OrderStatus.CANCELLED)

    await reply(producer, settings, confirm(command.order_id, "ITEM-1"))

    await bus.until(lambda: len(bus.releases(command.order_id)) == 2)
    assert [r.reason for r in bus.releases(command.order_id)] == ["ORDER_CANCELLED", "LATE_CONFIRMATION"]
    assert [e.status for e in await bus.settled_events(command.order_id)] == [5, 3]


async def test_partial_cancellation_keeps_the_rest_usable(
    settings: Settings, producer: AIOKafkaProducer, bus: Observer
) -> None:
    """One of two items cancelled: still Confirmed, the item out of the view, its reservation released."""
    command = prebooking("RES-OK", "RES-OK-2")
    await send(producer, settings, command)
    await bus.status(command.order_id, OrderStatus.CONFIRMED)

    cancel = CancelOrder(
        command_id=unique("cmd"), client_id="client-a", order_id=command.order_id, order_item_ids=["ITEM-2"]
    )
    await send(producer, settings, cancel)

    events = await bus.status(command.order_id, OrderStatus.CONFIRMED, sequence=3)
    assert (events[-1].previous_status, events[-1].reason) == (OrderStatus.CONFIRMED, "ITEMS_CANCELLED")
    assert [i.order_item_id for i in events[-1].order.items] == ["ITEM-1"]
    await bus.until(lambda: bus.releases(command.order_id))
    assert [r.reservation_id for r in bus.releases(command.order_id)] == [
        f"{command.client_id}/{command.order_id}/ITEM-2"
    ]


async def test_partial_then_full_redemption(
    settings: Settings, producer: AIOKafkaProducer, bus: Observer
) -> None:
    """One passenger shows up: Used (2) with the order still OPENED; the second: CLOSED."""
    command = prebooking(passengers=2)
    await send(producer, settings, command)
    await bus.status(command.order_id, OrderStatus.CONFIRMED)

    for passenger in ("PAX-1", "PAX-2"):
        redeem = RedeemOrder(
            command_id=unique("cmd"),
            client_id="client-a",
            order_id=command.order_id,
            service_ids=[f"ITEM-1-{passenger}"],
        )
        await send(producer, settings, redeem)

    events = await bus.status(command.order_id, OrderStatus.USED, sequence=4)
    assert [(e.status, e.order.status) for e in events[2:]] == [
        (OrderStatus.USED, OneOrderStatus.OPENED),
        (OrderStatus.USED, OneOrderStatus.CLOSED),
    ]
