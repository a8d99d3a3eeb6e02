"""The retention policy in Redis: what a transition decides about keeping an order is what its keys do."""

import time
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from contracts.commands import CancelOrder
from contracts.resources import ReservationFailed
from service.consumers.inbound import command_input, reply_input
from service.domain.local_effects import IndexOrder
from service.domain.policy import DEFAULT_ORDER_RETENTION
from service.store.keys import client_orders_key, inputs_key, order_key
from service.store.orders import OrderStore
from service.store.outbox import Destination
from testkit.factories import prebooking, unique
from tests.integration.test_outbox_and_concurrency import NOW, RecordingPublisher, processor


@pytest.fixture
def redis(store_redis: Redis) -> Redis:
    """Every test here runs on a single node and on a Redis Cluster."""
    return store_redis


async def test_a_pending_order_is_kept_and_a_failed_one_expires_after_the_retention(redis: Redis) -> None:
    """A Pending order's keys never expire; once it fails, they expire the retention after that change."""
    create = prebooking()
    orders = processor(redis, RecordingPublisher())
    await orders.process([command_input(create)])
    keys = [order_key(create.client_id, create.order_id), inputs_key(create.client_id, create.order_id)]
    assert [await redis.pttl(k) for k in keys] == [-1, -1]

    refusal = ReservationFailed(
        reply_id=unique("r"),
        order_id=create.order_id,
        reservation_id=f"{create.client_id}/{create.order_id}/ITEM-1",
        reason_code="SOLD_OUT",
        reason="sold out",
    )
    await orders.process([reply_input(refusal)])

    expected_ms = ((NOW + DEFAULT_ORDER_RETENTION).timestamp() - time.time()) * 1000
    for key in keys:
        assert abs(await redis.pttl(key) - expected_ms) < 60_000, key


async def test_a_rejected_command_for_an_unknown_order_leaves_no_key_for_ever(redis: Redis) -> None:
    """The input record that makes a re-sent command a duplicate is kept as long as a finished order."""
    cancel = CancelOrder(command_id=unique("cmd"), client_id="client-a", order_id=unique("ORD"))
    publisher = RecordingPublisher()

    await processor(redis, publisher).process([command_input(cancel)])

    assert [e.destination for e in publisher.published] == [Destination.COMMAND_REJECTED]
    expected_ms = ((NOW + DEFAULT_ORDER_RETENTION).timestamp() - time.time()) * 1000
    for key in (order_key(cancel.client_id, cancel.order_id), inputs_key(cancel.client_id, cancel.order_id)):
        assert abs(await redis.pttl(key) - expected_ms) < 60_000, key


async def test_the_client_listing_forgets_orders_older_than_its_retention(redis: Redis) -> None:
    """Indexing an order drops the client's listing entries past the index retention, and keeps the rest."""
    store = OrderStore(redis, index_retention_seconds=int(timedelta(days=400).total_seconds()))
    client = unique("client")
    old = IndexOrder(client_id=client, order_id="ORD-OLD", created_at=NOW - timedelta(days=401))
    kept = IndexOrder(client_id=client, order_id="ORD-KEPT", created_at=NOW - timedelta(days=399))
    await store.index([old, kept])

    await store.index([IndexOrder(client_id=client, order_id="ORD-NEW", created_at=NOW)])

    assert await redis.zrange(client_orders_key(client), 0, -1) == [b"ORD-KEPT", b"ORD-NEW"]
