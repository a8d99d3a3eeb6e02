"""`webhook:{<endpoint_id>}:done` is bounded: an order leaves it the order retention after its last settle,
while queuing stays idempotent within that time."""

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from service.store.keys import webhook_done_at_key, webhook_done_key
from service.store.webhook_deliveries import DeliveryStore, QueuedEvent
from service.store.webhook_endpoints import EndpointStore
from testkit.factories import unique
from tests.relay.conftest import queued_status

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RETENTION = timedelta(seconds=60)


async def _deliver(deliveries: DeliveryStore, event: QueuedEvent, at: datetime) -> None:
    await deliveries.enqueue([event], at)
    [claim] = [
        c for c in await deliveries.claim({event.endpoint_id: 10}, at, 30) if c.queue_id == event.order_id
    ]
    [head] = await deliveries.heads([claim])
    assert head is not None
    await deliveries.settle(claim, head, "delivered", at, None, {"at": at.isoformat()}, (1000, 60), 100)


async def test_done_forgets_an_order_the_retention_after_its_last_settle(redis: Redis) -> None:
    """Within the retention a redelivered event is not queued again; after it, the next settle at the
    endpoint drops the order from `done` (and its time), and only the orders settled since are left."""
    endpoint = await EndpointStore(redis).create(unique("client"), "https://hooks.example.com/o", NOW)
    ep = endpoint.endpoint_id
    deliveries = DeliveryStore(redis, done_memory_seconds=int(RETENTION.total_seconds()))
    await _deliver(deliveries, queued_status(ep, "ORD-OLD", 1), NOW)

    await deliveries.enqueue([queued_status(ep, "ORD-OLD", 1)], NOW + RETENTION / 2)  # the topic read again
    within = await deliveries.backlogs([ep])
    await _deliver(deliveries, queued_status(ep, "ORD-NEW", 1), NOW + RETENTION + timedelta(seconds=1))

    assert within == {ep: 0}, "a settled event was queued again within the retention"
    assert await redis.hkeys(webhook_done_key(ep)) == [b"ORD-NEW"]
    assert await redis.zrange(webhook_done_at_key(ep), 0, -1) == [b"ORD-NEW"]
    await EndpointStore(redis).delete(endpoint)
    assert not await redis.exists(webhook_done_key(ep), webhook_done_at_key(ep))
