"""A delivery that leaves events in its order's queue can keep the queue leased to its worker, with the next
event in the settle's reply (no claim, no head, no due-index touch for a backlog)."""

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from service.clock import to_epoch_ms
from service.store.webhook_deliveries import Claim, DeliveryStore, Head
from service.store.webhook_endpoints import EndpointStore
from testkit.factories import unique
from tests.relay.conftest import queued_status

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BREAKER = (1000, 60.0)


async def _first(deliveries: DeliveryStore, endpoint_id: str, at: datetime) -> tuple[Claim, Head]:
    [claim] = await deliveries.claim({endpoint_id: 10}, at, 30)
    [head] = await deliveries.heads([claim])
    assert head is not None
    return claim, head


async def test_a_delivery_keeps_its_queue_and_returns_the_next_event(redis: Redis) -> None:
    endpoints = EndpointStore(redis)
    endpoint = await endpoints.create(unique("client"), "https://hooks.example.com/k", NOW)
    ep = endpoint.endpoint_id
    [(version, _)] = (await endpoints.versions([ep])).values()
    deliveries = DeliveryStore(redis)
    await deliveries.enqueue([queued_status(ep, "ORD-K", 1), queued_status(ep, "ORD-K", 2)], NOW)
    claim, head = await _first(deliveries, ep, NOW)
    later = NOW + timedelta(seconds=1)

    settled = await deliveries.settle(
        claim,
        head,
        "delivered",
        later,
        None,
        {"at": "x"},
        BREAKER,
        100,
        keep_lease_seconds=30,
        version=version,
    )

    assert settled is not None and settled.kept is not None
    kept_claim, kept_head = settled.kept
    assert kept_claim == Claim(ep, "ORD-K", to_epoch_ms(later) + 30_000)
    assert (kept_head.event.event_id, kept_head.event.sequence) == ("ev-ORD-K-2", 2)
    assert kept_head.event.body == queued_status(ep, "ORD-K", 2).body
    assert kept_head.attempts == [] and kept_head.config is None, "the version held is the stored one"
    assert await deliveries.claim({ep: 10}, later, 30) == [], "kept: no other claim gets the queue"

    last = await deliveries.settle(
        kept_claim, kept_head, "delivered", later, None, {"at": "y"}, BREAKER, 100, keep_lease_seconds=30
    )
    assert last is not None and last.kept is None, "the queue is empty: nothing to keep"
    assert await deliveries.backlogs([ep]) == {ep: 0}


async def test_only_a_delivery_keeps_a_queue_and_a_stale_version_gets_the_configuration(redis: Redis) -> None:
    endpoints = EndpointStore(redis)
    endpoint = await endpoints.create(unique("client"), "https://hooks.example.com/k", NOW)
    ep = endpoint.endpoint_id
    deliveries = DeliveryStore(redis)
    await deliveries.enqueue([queued_status(ep, "ORD-R", 1), queued_status(ep, "ORD-R", 2)], NOW)
    claim, head = await _first(deliveries, ep, NOW)

    retried = await deliveries.settle(
        claim, head, "retry", NOW, NOW, {"at": "x"}, BREAKER, 100, keep_lease_seconds=30, version="old"
    )
    assert retried is not None and retried.kept is None
    claim, head = await _first(deliveries, ep, NOW)  # due again, as before: claimed like any queue
    assert head.event.sequence == 1 and len(head.attempts) == 1

    delivered = await deliveries.settle(
        claim, head, "delivered", NOW, None, {"at": "y"}, BREAKER, 100, keep_lease_seconds=30, version="old"
    )
    assert delivered is not None and delivered.kept is not None
    _, kept_head = delivered.kept
    assert kept_head.config is not None and kept_head.config.config is not None, "stale: the stored config"
    assert endpoints.parse(kept_head.config.config).endpoint_id == ep


async def test_a_claim_returns_the_heads_that_heads_reads(redis: Redis) -> None:
    endpoint = await EndpointStore(redis).create(unique("client"), "https://hooks.example.com/k", NOW)
    ep = endpoint.endpoint_id
    deliveries = DeliveryStore(redis)
    await deliveries.enqueue(
        [queued_status(ep, "ORD-A", 1), queued_status(ep, "ORD-A", 2), queued_status(ep, "ORD-B", 1)], NOW
    )

    [found] = (await deliveries.claim_checked({ep: (10, None)}, NOW, 30, with_heads=True)).values()

    assert sorted(c.queue_id for c in found.claims) == ["ORD-A", "ORD-B"]
    read = await deliveries.heads(found.claims)
    assert [(h.event, h.attempts) for h in found.heads if h] == [(h.event, h.attempts) for h in read if h]
    assert len(found.heads) == len(read) == 2
    assert [h.event.sequence for h in found.heads if h] == [1, 1]


async def test_a_delivery_that_empties_its_queue_leases_the_next_due_one(redis: Redis) -> None:
    endpoint = await EndpointStore(redis).create(unique("client"), "https://hooks.example.com/k", NOW)
    ep = endpoint.endpoint_id
    deliveries = DeliveryStore(redis)
    await deliveries.enqueue([queued_status(ep, "ORD-A", 1), queued_status(ep, "ORD-B", 1)], NOW)
    [claim] = await deliveries.claim({ep: 1}, NOW, 30)
    [head] = await deliveries.heads([claim])
    assert head is not None
    later = NOW + timedelta(seconds=1)

    settled = await deliveries.settle(
        claim, head, "delivered", later, None, {"at": "x"}, BREAKER, 100, keep_lease_seconds=30
    )

    assert settled is not None and settled.kept is not None
    other, other_head = settled.kept
    assert other.queue_id == ({"ORD-A", "ORD-B"} - {claim.queue_id}).pop()
    assert other.lease_ms == to_epoch_ms(later) + 30_000
    assert other_head.event.event_id == f"ev-{other.queue_id}-1"
    assert await deliveries.claim({ep: 10}, later, 30) == [], "leased to the worker that delivered"
    retried = await deliveries.settle(
        other, other_head, "retry", later, later, {"at": "y"}, BREAKER, 100, keep_lease_seconds=30
    )
    assert retried is not None and retried.kept is None, "only a delivery keeps the slot busy"
