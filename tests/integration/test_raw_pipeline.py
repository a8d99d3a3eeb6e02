"""The processor's raw pipelines (`service.store.raw_pipeline`) on a real Redis, one node and a Cluster:
replies in order, errors where they belong, and a connection never reused with replies still on it."""

import asyncio
import uuid

import pytest
from redis.asyncio import Redis, RedisCluster
from redis.exceptions import ClusterDownError, ResponseError

from service.devstack import Endpoints
from service.store.client import connect
from service.store.raw_pipeline import RawPipeline, hash_items


def _keys(count: int) -> list[str]:
    """Keys of different hash tags: on a Cluster they fall on several nodes."""
    run = uuid.uuid4().hex[:8]
    return [f"raw:{{{run}-{n}}}" for n in range(count)]


async def test_replies_come_back_in_the_order_of_the_commands(store_redis: Redis) -> None:
    keys = _keys(12)
    pipe = RawPipeline(store_redis)
    for n, key in enumerate(keys):
        pipe.command(key, "HSET", key, "n", n, "double", 2 * n)
        pipe.command(key, "HGETALL", key)
        pipe.command(key, "SET", f"{key}:claim", "mine", "NX", "EX", 60)
    replies = await pipe.execute()

    assert len(replies) == 3 * len(keys)
    for n in range(len(keys)):
        written, stored, claimed = replies[3 * n : 3 * n + 3]
        assert written == 2
        assert dict(hash_items(stored)) == {b"n": str(n).encode(), b"double": str(2 * n).encode()}
        assert claimed == b"OK"


async def test_an_error_reply_is_raised_after_every_reply_was_read(store_redis: Redis) -> None:
    [first, second] = _keys(2)
    pipe = RawPipeline(store_redis)
    pipe.command(first, "SET", first, "text")
    pipe.command(first, "INCR", first)  # not an integer: an error reply
    pipe.command(second, "SET", second, "after the error")
    with pytest.raises(ResponseError, match="not an integer"):
        await pipe.execute()

    # The command after the error ran, and the connection went back to the pool in step.
    assert await store_redis.get(second) == b"after the error"
    pipe = RawPipeline(store_redis)
    pipe.command(first, "INCR", first)
    pipe.command(second, "GET", second)
    [error, value] = await pipe.execute(raise_on_error=False)
    assert isinstance(error, ResponseError)
    assert value == b"after the error"


async def test_a_cancelled_round_trip_leaves_no_reply_for_the_next_one(stack: Endpoints) -> None:
    """A batch cut short by its time limit must not leave its replies to be read as the next batch's."""
    redis = connect(stack.redis_url, reply_timeout=None)
    [blocked, key] = _keys(2)
    await redis.set(key, "the next batch's value")
    pipe = RawPipeline(redis)
    pipe.command(blocked, "BLPOP", blocked, 1)  # answered (nil) after a second, when nobody waits any more
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await pipe.execute()

    pipe = RawPipeline(redis)
    pipe.command(key, "GET", key)
    assert await pipe.execute() == [b"the next batch's value"]
    await redis.aclose()


async def test_a_moved_slot_refreshes_the_cluster_map_and_fails_the_batch(redis_cluster_url: str) -> None:
    cluster = connect(redis_cluster_url, cluster=True)
    assert isinstance(cluster, RedisCluster)
    [key] = _keys(1)
    await cluster.set(key, "value")
    slot = cluster.keyslot(key)
    owner = cluster.nodes_manager.slots_cache[slot]
    elsewhere = next(n for n in cluster.get_primaries() if n.name != owner[0].name)
    cluster.nodes_manager.slots_cache[slot] = [elsewhere]  # as if the slot had moved since the map was read

    pipe = RawPipeline(cluster)
    pipe.command(key, "GET", key)
    with pytest.raises(ClusterDownError, match="slots moved"):
        await pipe.execute()

    assert cluster.nodes_manager.slots_cache[slot][0].name == owner[0].name
    pipe = RawPipeline(cluster)
    pipe.command(key, "GET", key)
    assert await pipe.execute() == [b"value"]
    await cluster.aclose()
