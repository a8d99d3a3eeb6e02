"""A resource that answers `waitlisted`, through the real broker and Redis: settled by a later `confirmed`,
or by the waitlist deadline, which replaces the shorter confirmation deadline."""

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.resources import ReservationConfirmed
from contracts.statuses import OrderStatus
from service.config import Settings
from service.store.keys import CONFIRMATION_TIMERS, WAITLIST_TIMERS, order_ref
from testkit.factories import prebooking, unique
from testkit.kafka_tap import TopicTap, produce
from tests.integration.conftest import BOTH_LAYOUTS, WAITLIST_RESOURCE, WAITLIST_TIMEOUT_SECONDS
from tests.integration.observe import Observer, commands_topic
from tests.waiting import eventually

pytestmark = [pytest.mark.usefixtures("simulator", "service"), BOTH_LAYOUTS]


@pytest.fixture
def bus(tap: TopicTap, settings: Settings) -> Observer:
    return Observer(tap, settings)


async def test_waitlisted_then_confirmed_after_the_confirmation_deadline(
    settings: Settings, producer: AIOKafkaProducer, bus: Observer, redis: Redis
) -> None:
    """Waitlisted: Pending with reason WAITLISTED and WAITLISTED services; the confirmation deadline fires
    and leaves it alone; the resource's later `confirmed` confirms it and clears the waitlist deadline."""
    command = prebooking(WAITLIST_RESOURCE, passengers=2)
    member = order_ref(command.client_id, command.order_id)
    await produce(producer, commands_topic(settings, command.client_id), command, command.order_id)

    [_, waitlisted] = await bus.status(command.order_id, OrderStatus.PENDING, sequence=2)
    assert (waitlisted.previous_status, waitlisted.reason) == (OrderStatus.PENDING, "WAITLISTED")
    assert {(s.status, s.delivery_status) for s in waitlisted.order.items[0].services} == {
        ("WAITLISTED", "REQUESTED")
    }
    await eventually(lambda: redis.zscore(WAITLIST_TIMERS, member))
    # The confirmation deadline was set, fired (and was forgotten) while the order stayed Pending.
    await eventually(lambda: redis.zscore(CONFIRMATION_TIMERS, member))
    await eventually(lambda: _unset(redis, CONFIRMATION_TIMERS, member))
    assert [e.status for e in await bus.settled_events(command.order_id)] == [5, 5]

    confirmed = ReservationConfirmed(
        reply_id=unique("op"),
        order_id=command.order_id,
        reservation_id=f"{command.client_id}/{command.order_id}/ITEM-1",
    )
    await produce(producer, settings.topic_resource_replies, confirmed, command.order_id)

    events = await bus.status(command.order_id, OrderStatus.CONFIRMED)
    assert [(e.sequence, e.status, e.reason) for e in events] == [
        (1, 5, None),
        (2, 5, "WAITLISTED"),
        (3, 1, None),
    ]
    assert {s.status for s in events[-1].order.items[0].services} == {"CONFIRMED"}
    await eventually(lambda: _unset(redis, WAITLIST_TIMERS, member))


async def test_waitlisted_and_never_settled_fails_at_the_waitlist_deadline(
    settings: Settings, producer: AIOKafkaProducer, bus: Observer
) -> None:
    """Nothing after `waitlisted`: Failed (10) with WAITLIST_TIMEOUT no sooner than the waitlist timeout
    after creation, the services UNABLE_TO_DELIVER, the waitlisted reservation released."""
    command = prebooking(WAITLIST_RESOURCE)
    await produce(producer, commands_topic(settings, command.client_id), command, command.order_id)

    events = await bus.status(command.order_id, OrderStatus.FAILED)

    assert [(e.sequence, e.status, e.reason) for e in events] == [
        (1, 5, None),
        (2, 5, "WAITLISTED"),
        (3, 10, "WAITLIST_TIMEOUT"),
    ]
    waited = (events[-1].occurred_at - events[0].occurred_at).total_seconds()
    assert waited >= WAITLIST_TIMEOUT_SECONDS, "the waitlist deadline, not the confirmation one, decided"
    assert {s.delivery_status for s in events[-1].order.items[0].services} == {"UNABLE_TO_DELIVER"}
    await bus.until(lambda: bus.releases(command.order_id))
    assert [r.reason for r in bus.releases(command.order_id)] == ["ORDER_FAILED"]


async def _unset(redis: Redis, key: str, member: str) -> bool:
    return await redis.zscore(key, member) is None
