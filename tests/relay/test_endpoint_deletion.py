"""Deleting an endpoint removes every key of it, found through its own keys rather than a keyspace SCAN."""

import json
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from service.store.keys import WEBHOOK_ENDPOINTS, client_webhooks_key
from service.store.webhook_deliveries import DeliveryStore, Outcome, QueuedEvent
from service.store.webhook_endpoints import EndpointStore
from testkit.factories import unique

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def _keys_of(redis: Redis, endpoint_id: str) -> set[bytes]:
    """Every key with the endpoint's hash tag (KEYS, not SCAN: the test must not add to SCAN's count)."""
    keys: list[bytes] = await redis.keys(f"*{{{endpoint_id}}}*")  # type: ignore[assignment]
    return set(keys)


async def _scan_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_scan", {}).get("calls", 0))


def _event(endpoint_id: str, order_id: str, sequence: int) -> QueuedEvent:
    body = json.dumps({"order_id": order_id, "sequence": sequence}).encode()
    return QueuedEvent(
        endpoint_id=endpoint_id,
        order_id=order_id,
        event_id=f"ev-{order_id}-{sequence}",
        sequence=sequence,
        body=body,
    )


async def _queue_in_every_state(deliveries: DeliveryStore, endpoint_id: str) -> None:
    """Queued, leased, waiting for a retry, dead and replayed, delivered: every state a queue can be in."""
    await deliveries.enqueue([_event(endpoint_id, f"ORD-{n}", s) for n in range(1, 6) for s in (1, 2)], NOW)
    claims = await deliveries.claim({endpoint_id: 4}, NOW, 30)  # the fourth order stays leased
    heads = await deliveries.heads(claims)
    outcomes: list[Outcome] = ["retry", "dead", "delivered"]
    for claim, head, outcome in zip(claims[:3], heads[:3], outcomes, strict=True):
        assert head is not None
        await deliveries.settle(claim, head, outcome, NOW, NOW, {"at": NOW.isoformat()}, (1000, 60), 100)
    assert len(await deliveries.dead(endpoint_id)) == 1


async def test_deleting_an_endpoint_leaves_none_of_its_keys_and_scans_nothing(redis: Redis) -> None:
    """Queues of several orders in every state are removed without a SCAN; another endpoint keeps its own."""
    endpoints, deliveries = EndpointStore(redis), DeliveryStore(redis)
    client = unique("deleting")
    doomed = await endpoints.create(client, "https://hooks.example.com/a", NOW)
    kept = await endpoints.create(client, "https://hooks.example.com/b", NOW)
    for endpoint in (doomed, kept):
        await _queue_in_every_state(deliveries, endpoint.endpoint_id)
    before = await _keys_of(redis, doomed.endpoint_id)
    kept_before = await _keys_of(redis, kept.endpoint_id)
    scans = await _scan_calls(redis)

    await endpoints.delete(doomed)

    assert sum(b":pending:" in key for key in before) == 5, "a queue for each of the five orders"
    assert await _keys_of(redis, doomed.endpoint_id) == set()
    assert await _scan_calls(redis) == scans
    assert await _keys_of(redis, kept.endpoint_id) == kept_before
    assert [e.endpoint_id for e in await endpoints.for_client(client)] == [kept.endpoint_id]
    assert not await redis.sismember(WEBHOOK_ENDPOINTS, doomed.endpoint_id)
    assert await redis.smembers(client_webhooks_key(client)) == {kept.endpoint_id.encode()}


async def test_a_replayed_delivery_makes_its_order_due_again(redis: Redis) -> None:
    """An order whose only event died has left `due`; replaying it puts the order back, so the queue the
    replay creates is found (and removed) by a deletion."""
    endpoints, deliveries = EndpointStore(redis), DeliveryStore(redis)
    endpoint = await endpoints.create(unique("replaying"), "https://hooks.example.com/a", NOW)
    await deliveries.enqueue([_event(endpoint.endpoint_id, "ORD-1", 1)], NOW)
    [claim] = await deliveries.claim({endpoint.endpoint_id: 1}, NOW, 30)
    [head] = await deliveries.heads([claim])
    assert head is not None
    await deliveries.settle(claim, head, "dead", NOW, None, {"at": NOW.isoformat()}, (1000, 60), 100)
    assert await deliveries.backlogs([endpoint.endpoint_id]) == {endpoint.endpoint_id: 0}

    assert await deliveries.replay(endpoint.endpoint_id, [head.event.event_id], NOW) == 1
    assert await deliveries.backlogs([endpoint.endpoint_id]) == {endpoint.endpoint_id: 1}
    await endpoints.delete(endpoint)

    assert await _keys_of(redis, endpoint.endpoint_id) == set()
