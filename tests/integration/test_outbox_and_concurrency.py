"""The processor against the real Redis: crash between commit and publish, and concurrent writers."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from contracts.events import OrderStatusChanged
from contracts.resources import ReservationConfirmed
from contracts.statuses import OrderStatus
from service.consumers.inbound import command_input, reply_input
from service.consumers.processor import OrderProcessor
from service.devstack import Endpoints
from service.domain.policy import Policy
from service.store.effects import LocalEffects
from service.store.entitlements import EntitlementStore
from service.store.keys import outbox_key
from service.store.orders import OrderStore, Transition
from service.store.outbox import Destination, OutboxEntry
from service.store.timers import TimerStore
from tests.factories import prebooking

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class RecordingPublisher:
    """Keeps what it is asked to publish; fails the first `failures` calls like a broker that went away."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.published: list[OutboxEntry] = []

    async def publish(self, entries: Sequence[OutboxEntry]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        self.published.extend(entries)

    def events(self) -> list[OrderStatusChanged]:
        return [
            OrderStatusChanged.model_validate_json(e.value)
            for e in self.published
            if e.destination is Destination.STATUS_CHANGED
        ]


def processor(redis: Redis, publisher: RecordingPublisher) -> OrderProcessor:
    """A processor on the real Redis whose publisher is a recording stand-in for the broker."""
    entitlements, timers = EntitlementStore(redis), TimerStore(redis)
    effects = LocalEffects(entitlements, timers)
    return OrderProcessor(OrderStore(redis), entitlements, effects, publisher, lambda: NOW, Policy())


@pytest.fixture
async def redis(stack: Endpoints) -> AsyncIterator[Redis]:
    client = Redis.from_url(stack.redis_url)
    yield client
    await client.aclose()


async def test_events_stored_before_a_failed_publish_are_published_on_redelivery(redis: Redis) -> None:
    """A crash between the Redis commit and the broker's ack loses nothing: the re-delivered batch publishes
    the stored events under the same event ids, and applies nothing twice."""
    store = OrderStore(redis)
    command = command_input(prebooking("RES-A", "RES-B"))
    broken = RecordingPublisher(failures=1)

    with pytest.raises(ConnectionError):
        await processor(redis, broken).process([command])
    assert await redis.hlen(outbox_key(command.order_id)) == 4, "event, 2 reserve requests and a timer wait"

    healthy = RecordingPublisher()
    await processor(redis, healthy).process([command])

    assert [e.sequence for e in healthy.events()] == [1]
    assert [e.destination for e in healthy.published].count(Destination.RESOURCE_REQUESTS) == 2
    assert await redis.hlen(outbox_key(command.order_id)) == 0
    stored = await store.get(command.order_id)
    assert stored is not None and stored.sequence == 1

    await processor(redis, healthy).process([command])
    assert len(healthy.published) == 3, "a third delivery of an acknowledged command publishes nothing"


async def test_a_batch_applies_several_inputs_of_one_order_in_order(redis: Redis) -> None:
    """Create and both confirmations in one batch: each input sees the state the previous one left."""
    create = prebooking("RES-A", "RES-B")
    replies = [
        reply_input(
            ReservationConfirmed(
                reply_id=f"r-{item}", order_id=create.order_id, reservation_id=f"{create.order_id}/{item}"
            )
        )
        for item in ("ITEM-1", "ITEM-2")
    ]
    publisher = RecordingPublisher()

    await processor(redis, publisher).process([command_input(create), *replies])

    assert [(e.sequence, e.status) for e in publisher.events()] == [
        (1, OrderStatus.PENDING),
        (2, OrderStatus.CONFIRMED),
    ]


async def test_stale_version_is_refused_by_the_commit_script(redis: Redis) -> None:
    """A transition decided on a state that changed meanwhile is refused, not applied."""
    store = OrderStore(redis)
    create = command_input(prebooking())
    await processor(redis, RecordingPublisher()).process([create])

    stale = Transition(create.order_id, "reply/late", "f", expected_version="", new_state=b"{}")
    [result] = await store.commit([stale])

    assert result.outcome == "conflict"
    assert result.detail == create.input_id


async def test_concurrent_processors_apply_each_input_exactly_once(redis: Redis) -> None:
    """Two processors racing over the same inputs (a rebalance, a second instance) yield one effect each."""
    store = OrderStore(redis)
    create = prebooking("RES-A", "RES-B", "RES-C")
    await processor(redis, RecordingPublisher()).process([command_input(create)])
    replies = [
        reply_input(
            ReservationConfirmed(
                reply_id=f"r-{n}", order_id=create.order_id, reservation_id=f"{create.order_id}/ITEM-{n}"
            )
        )
        for n in (1, 2, 3)
    ]
    first, second = RecordingPublisher(), RecordingPublisher()

    await asyncio.gather(
        processor(redis, first).process(replies),
        processor(redis, second).process(list(reversed(replies))),
    )

    confirmations = [e for e in first.events() + second.events() if e.status is OrderStatus.CONFIRMED]
    assert len({e.event_id for e in confirmations}) == 1
    stored = await store.get(create.order_id)
    assert stored is not None and (stored.status, stored.sequence) == (OrderStatus.CONFIRMED, 2)
