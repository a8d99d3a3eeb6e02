"""The due index: a round of the delivery loop costs what is due, not how many endpoints are registered; the
index, written after each endpoint's atomic step, never hides a due queue for longer than a sweep."""

import random
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from service.clock import to_epoch_ms
from service.config import RelaySettings
from service.relay.sender import http_client
from service.relay.worker import DeliveryWorker
from service.store.keys import WEBHOOK_DUE_INDEX, webhook_due_key
from service.store.webhook_deliveries import DeliveryStore, QueuedEvent
from service.store.webhook_due_index import DueIndex
from service.store.webhook_endpoints import EndpointStore
from testkit.factories import unique
from testkit.webhook_receiver import WebhookReceiver


def _event(endpoint_id: str, order_id: str) -> QueuedEvent:
    return QueuedEvent(
        endpoint_id=endpoint_id, order_id=order_id, event_id=unique("ev"), sequence=1, body=b"{}"
    )


async def _commands(redis: Redis) -> int:
    stats = await redis.info("stats")
    return int(stats["total_commands_processed"])


async def test_idle_endpoints_cost_a_round_nothing(
    settings: RelaySettings, redis: Redis, receiver: WebhookReceiver
) -> None:
    """With 300 endpoints registered and nothing queued, a round is one index read (one script and the one
    command it runs; the old loop read every endpoint and ran a claim at each, every poll); one queued
    event then costs its own endpoint's work, and is delivered."""
    store, deliveries = EndpointStore(redis), DeliveryStore(redis)
    await redis.delete(WEBHOOK_DUE_INDEX)  # other tests' leftovers are not this test's rounds
    client = unique("idle")
    for _ in range(300):
        await store.create(client, receiver.url, datetime.now(UTC), limit=1000)
    worker = DeliveryWorker(store, deliveries, http_client(), settings, lambda: datetime.now(UTC))

    await worker.dispatch_due()  # loads the script
    before = await _commands(redis)
    started = [await worker.dispatch_due() for _ in range(10)]
    idle_commands = await _commands(redis) - before - 1  # INFO counts itself

    busy = await store.create(client, receiver.url, datetime.now(UTC), limit=1000)
    await deliveries.enqueue([_event(busy.endpoint_id, "ORD-1")], datetime.now(UTC))
    claimed = await worker.dispatch_due()
    await receiver.wait_for(receiver.delivered)
    await worker.stop()

    assert started == [0] * 10
    assert idle_commands == 2 * 10, f"{idle_commands} Redis commands for 10 idle rounds"
    assert claimed == 1


async def test_a_touch_after_the_claim_is_not_undone_by_the_revision(redis: Redis) -> None:
    """A worker reads an entry, then (after its claim) revises it to later; an event queued between the
    claim and the revision touched the entry: the revision leaves the touch's time. Unraced, it applies."""
    index = DueIndex(redis)
    raced, calm = unique("ep"), unique("ep")
    now = datetime.now(UTC)
    await index.touch([(raced, to_epoch_ms(now)), (calm, to_epoch_ms(now))])
    read = dict(await index.due(now, 10_000))

    await index.touch([(raced, to_epoch_ms(now))])  # a writer's step came after the claim's
    later = to_epoch_ms(now + timedelta(seconds=15))
    await index.revise([(raced, read[raced], later), (calm, read[calm], later)])

    assert await redis.zscore(WEBHOOK_DUE_INDEX, raced) == to_epoch_ms(now)
    assert await redis.zscore(WEBHOOK_DUE_INDEX, calm) == later
    await index.revise([(calm, read[calm], None)])  # a revision leaves the mark: the entry can go
    assert await redis.zscore(WEBHOOK_DUE_INDEX, calm) is None
    await index.remove(raced)


async def test_a_queue_the_index_never_learned_of_is_found_by_the_sweep(
    settings: RelaySettings, redis: Redis, receiver: WebhookReceiver
) -> None:
    """A writer that crashed after its atomic step, before touching the index: the rounds do not see its
    queue, the sweep does, and the next round delivers it."""
    store, deliveries = EndpointStore(redis), DeliveryStore(redis)
    endpoint = await store.create(unique("crash"), receiver.url, datetime.now(UTC))
    now_ms = to_epoch_ms(datetime.now(UTC))
    await redis.zadd(f"webhook:{{{endpoint.endpoint_id}}}:pending:ORD-1", {"ev-1": 1})
    await redis.hset(f"webhook:{{{endpoint.endpoint_id}}}:bodies", "ev-1", b"{}")
    await redis.zadd(webhook_due_key(endpoint.endpoint_id), {"ORD-1": now_ms})
    worker = DeliveryWorker(
        store, deliveries, http_client(), settings, lambda: datetime.now(UTC), random.Random(1)
    )

    missed = await _claimed_for(worker, endpoint.endpoint_id)
    await worker.sweep()
    found = await _claimed_for(worker, endpoint.endpoint_id)
    await receiver.wait_for(lambda: receiver.delivered("ev-1"))
    await worker.stop()

    assert (missed, found) == (False, True)


async def _claimed_for(worker: DeliveryWorker, endpoint_id: str) -> bool:
    """Whether a round (of as many as the index has due) started an attempt at the endpoint."""
    await worker.dispatch_due()
    return endpoint_id in worker._in_flight
