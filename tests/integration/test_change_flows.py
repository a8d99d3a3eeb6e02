"""Order changes (reschedule) through the real broker, Redis and HTTP API: a change confirmed moves the
services with their ids; a change refused or unanswered leaves the order as it was."""

from datetime import timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.commands import ChangeOrder, RedeemOrder
from contracts.statuses import OrderStatus, RejectionCode
from service.config import Settings
from service.store.keys import CHANGE_TIMERS, NO_SHOW_TIMERS, order_ref
from testkit.api_keys import issue_key
from testkit.factories import SERVICE_DATE, prebooking, unique
from testkit.kafka_tap import TopicTap, produce
from tests.integration.conftest import BOTH_LAYOUTS, FULL_RESOURCE, SILENT_RESOURCE
from tests.integration.observe import Observer, commands_topic
from tests.waiting import eventually

MOVED_TO = SERVICE_DATE + timedelta(days=3)
"""Where the changes move an item: three days after the prebookings' own date."""

pytestmark = [pytest.mark.usefixtures("simulator", "service"), BOTH_LAYOUTS]


@pytest.fixture
def bus(tap: TopicTap, settings: Settings) -> Observer:
    return Observer(tap, settings)


async def send(producer: AIOKafkaProducer, settings: Settings, command: ChangeOrder | RedeemOrder) -> None:
    await produce(producer, commands_topic(settings, command.client_id), command, command.order_id)


async def test_change_over_the_api_moves_the_services_and_releases_the_old_reservation(
    settings: Settings, producer: AIOKafkaProducer, bus: Observer, api: httpx.AsyncClient, redis: Redis
) -> None:
    """POST …/change: CHANGE_REQUESTED, a reserve for the new item; the simulator confirms: ORDER_CHANGED,
    the view shows the new item with the same ServiceIDs, the old reservation is released, and the no-show
    deadline of the new date is set. The same command again (Kafka, same command_id) changes nothing."""
    issued = await issue_key(redis, "client-a")
    command = prebooking(passengers=2)
    await send_create(producer, settings, command)
    [_, confirmed] = await bus.status(command.order_id, OrderStatus.CONFIRMED)
    key = unique("chg")

    response = await api.post(
        f"/v1/orders/{command.order_id}/change",
        json={"order_item_id": "ITEM-1", "service_date": MOVED_TO.isoformat(), "resource_id": "RES-OK-2"},
        headers={"Authorization": f"Bearer {issued.token}", "Idempotency-Key": key},
    )

    assert response.status_code == 202
    events = await bus.status(command.order_id, OrderStatus.CONFIRMED, sequence=4)
    assert [(e.sequence, e.status, e.reason) for e in events] == [
        (1, 5, None),
        (2, 1, None),
        (3, 1, "CHANGE_REQUESTED"),
        (4, 1, "ORDER_CHANGED"),
    ]
    assert events[2].order == confirmed.order, "until confirmed, the order shows the original item"
    [item] = events[-1].order.items
    assert (item.order_item_id, item.resource_id, item.service_date) == (
        "CHANGE-1",
        "RES-OK-2",
        MOVED_TO.isoformat(),
    )
    assert [s.service_id for s in item.services] == ["ITEM-1-PAX-1", "ITEM-1-PAX-2"]
    assert {s.delivery_status for s in item.services} == {"READY_TO_DELIVER"}
    reserves = [r.reservation_id for r in bus.requests(command.order_id) if r.type == "reserve"]
    assert reserves[-1] == f"client-a/{command.order_id}/CHANGE-1"
    await bus.until(lambda: bus.releases(command.order_id))
    [release] = bus.releases(command.order_id)
    assert (release.reservation_id, release.reason) == (
        f"client-a/{command.order_id}/ITEM-1",
        "ORDER_CHANGED",
    )
    prefix = f"{order_ref('client-a', command.order_id)}/".encode()

    async def no_show_deadlines() -> list[float] | None:
        dues = sorted((await members_of(redis, NO_SHOW_TIMERS, prefix)).values())
        return dues if len(dues) == 2 else None

    old_due, new_due = await eventually(no_show_deadlines)
    assert new_due - old_due == 3 * 24 * 3600 * 1000, "the moved date's deadline, beside the old one"

    replay = ChangeOrder(
        command_id=key,
        client_id="client-a",
        order_id=command.order_id,
        order_item_id="ITEM-1",
        service_date=MOVED_TO,
        resource_id="RES-OK-2",
    )
    await send(producer, settings, replay)
    sentinel = RedeemOrder(command_id=unique("cmd"), client_id="client-a", order_id=command.order_id)
    await send(producer, settings, sentinel)
    used = await bus.status(command.order_id, OrderStatus.USED)
    assert [e.sequence for e in used] == [1, 2, 3, 4, 5], "the replayed change did nothing"
    assert len(bus.releases(command.order_id)) == 1


async def test_a_refused_change_leaves_the_order_as_it_was(
    settings: Settings, producer: AIOKafkaProducer, bus: Observer
) -> None:
    """A change to a resource that refuses: CHANGE_REQUESTED then CHANGE_REFUSED, the view as before, no
    release of the original; a delivered service then cannot move (SERVICES_DELIVERED)."""
    command = prebooking(passengers=1)
    await send_create(producer, settings, command)
    [_, confirmed] = await bus.status(command.order_id, OrderStatus.CONFIRMED)
    change = ChangeOrder(
        command_id=unique("cmd"),
        client_id="client-a",
        order_id=command.order_id,
        order_item_id="ITEM-1",
        resource_id=FULL_RESOURCE,
    )

    await send(producer, settings, change)

    events = await bus.status(command.order_id, OrderStatus.CONFIRMED, sequence=4)
    assert [e.reason for e in events] == [None, None, "CHANGE_REQUESTED", "CHANGE_REFUSED"]
    assert events[-1].order == confirmed.order, "the order stays as it was"
    assert not bus.releases(command.order_id)

    await send(
        producer,
        settings,
        RedeemOrder(command_id=unique("cmd"), client_id="client-a", order_id=command.order_id),
    )
    await bus.status(command.order_id, OrderStatus.USED)
    late = change.model_copy(update={"command_id": unique("cmd"), "resource_id": "RES-OK-2"})
    await send(producer, settings, late)
    assert (await bus.rejection(command.order_id, late.command_id)).code is RejectionCode.SERVICES_DELIVERED


async def test_an_unanswered_change_times_out_and_its_reservation_is_released(
    settings: Settings, producer: AIOKafkaProducer, bus: Observer, redis: Redis
) -> None:
    """A change to a resource that never answers: its deadline (a dated Redis timer) fires once:
    CHANGE_TIMEOUT, the view as before, a release of the change's reservation only."""
    command = prebooking(passengers=1)
    await send_create(producer, settings, command)
    [_, confirmed] = await bus.status(command.order_id, OrderStatus.CONFIRMED)
    change = ChangeOrder(
        command_id=unique("cmd"),
        client_id="client-a",
        order_id=command.order_id,
        order_item_id="ITEM-1",
        resource_id=SILENT_RESOURCE,
    )

    await send(producer, settings, change)

    await bus.status(command.order_id, OrderStatus.CONFIRMED, sequence=3)
    prefix = f"{order_ref('client-a', command.order_id)}/".encode()
    assert await members_of(redis, CHANGE_TIMERS, prefix)
    events = await bus.status(command.order_id, OrderStatus.CONFIRMED, sequence=4)
    assert events[-1].reason == "CHANGE_TIMEOUT" and events[-1].order == confirmed.order
    await bus.until(lambda: bus.releases(command.order_id))
    [release] = bus.releases(command.order_id)
    assert (release.reservation_id, release.reason) == (
        f"client-a/{command.order_id}/CHANGE-1",
        "CHANGE_WITHDRAWN",
    )

    async def forgotten() -> bool:
        return not await members_of(redis, CHANGE_TIMERS, prefix)

    await eventually(forgotten)


async def send_create(producer: AIOKafkaProducer, settings: Settings, command: object) -> None:
    topic = commands_topic(settings, command.client_id)  # type: ignore[attr-defined]
    await produce(producer, topic, command, command.order_id)  # type: ignore[arg-type, attr-defined]


async def members_of(redis: Redis, key: str, prefix: bytes) -> dict[bytes, float]:
    """The members of sorted set `key` that begin with `prefix` (one order's dated timers), with scores."""
    scored: list[tuple[bytes, float]] = await redis.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
    return {member: score for member, score in scored if member.startswith(prefix)}
