"""No-shows through the real broker and Redis: a confirmed booking whose date passed becomes NOT_CLAIMED
once, by a Redis timer that survives a replay; a later redemption is refused; the grace is per resource."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.commands import CreatePrebooking, RedeemOrder
from contracts.statuses import OneOrderStatus, OrderStatus, RejectionCode
from service.clock import to_epoch_ms
from service.config import Settings
from service.store.keys import NO_SHOW_TIMERS, order_ref
from testkit.factories import prebooking, unique
from testkit.kafka_tap import TopicTap, produce
from tests.integration.conftest import BOTH_LAYOUTS, LONG_GRACE_LANE, LONG_GRACE_SECONDS, NO_GRACE_LANE
from tests.integration.observe import Observer, commands_topic
from tests.waiting import eventually

pytestmark = [pytest.mark.usefixtures("simulator", "service"), BOTH_LAYOUTS]


@pytest.fixture
def bus(tap: TopicTap, settings: Settings) -> Observer:
    return Observer(tap, settings)


def dated(command: CreatePrebooking, service_date: date) -> CreatePrebooking:
    items = [item.model_copy(update={"service_date": service_date}) for item in command.items]
    return command.model_copy(update={"items": items})


def redeem(order_id: str) -> RedeemOrder:
    return RedeemOrder(command_id=unique("cmd"), client_id="client-a", order_id=order_id)


async def _unset(redis: Redis, member: str) -> bool:
    return await redis.zscore(NO_SHOW_TIMERS, member) is None


async def test_a_booking_nobody_used_by_its_date_is_not_claimed_once(
    settings: Settings, producer: AIOKafkaProducer, bus: Observer, redis: Redis
) -> None:
    """Yesterday's booking with no grace: Confirmed, then NO_SHOW with the status unchanged, the services
    NOT_CLAIMED and the view CLOSED; a redemption is SERVICES_NOT_CLAIMED; the timer fired again (a lapsed
    lease) changes nothing more."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    command = dated(prebooking(NO_GRACE_LANE, passengers=2), yesterday)
    await produce(producer, commands_topic(settings, command.client_id), command, command.order_id)

    events = await bus.status(command.order_id, OrderStatus.CONFIRMED, sequence=3)

    assert [(e.sequence, e.status, e.reason) for e in events] == [
        (1, 5, None),
        (2, 1, None),
        (3, 1, "NO_SHOW"),
    ]
    assert events[-1].order.status is OneOrderStatus.CLOSED
    assert [i.status for i in events[-1].order.items] == ["CLOSED"]
    assert {s.delivery_status for s in events[-1].order.items[0].services} == {"NOT_CLAIMED"}
    # Dated: the member carries its deadline, the end of yesterday (no grace).
    due = to_epoch_ms(datetime.combine(yesterday + timedelta(days=1), time.min, UTC))
    member = f"{order_ref(command.client_id, command.order_id)}/{due}"
    await eventually(lambda: _unset(redis, member))

    await redis.zadd(NO_SHOW_TIMERS, {member: 0})  # as if a claimer crashed: fired again by another
    await eventually(lambda: _unset(redis, member))
    late = redeem(command.order_id)
    await produce(producer, commands_topic(settings, command.client_id), late, command.order_id)

    assert (await bus.rejection(command.order_id, late.command_id)).code is RejectionCode.SERVICES_NOT_CLAIMED
    assert len(await bus.settled_events(command.order_id)) == 3


async def test_the_no_show_deadline_is_the_date_plus_the_resources_grace(
    settings: Settings, producer: AIOKafkaProducer, bus: Observer, redis: Redis
) -> None:
    """At a resource with a long grace, yesterday's booking is not a no-show yet: its deadline is set in
    Redis to the end of the date plus that grace, and the booking can be redeemed."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    command = dated(prebooking(LONG_GRACE_LANE), yesterday)
    await produce(producer, commands_topic(settings, command.client_id), command, command.order_id)
    await bus.status(command.order_id, OrderStatus.CONFIRMED)

    day_end = datetime.combine(yesterday + timedelta(days=1), time.min, UTC)
    due = to_epoch_ms(day_end + timedelta(seconds=LONG_GRACE_SECONDS))
    member = f"{order_ref(command.client_id, command.order_id)}/{due}"
    score = await eventually(lambda: redis.zscore(NO_SHOW_TIMERS, member))

    assert score == due
    used = redeem(command.order_id)
    await produce(producer, commands_topic(settings, command.client_id), used, command.order_id)
    events = await bus.status(command.order_id, OrderStatus.USED)
    assert [e.reason for e in events] == [None, None, None]
