"""Entitlement consumption records: at most once per walk-in, refunded once, and gone after their lifetime."""

import time

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.statuses import OrderStatus
from service.app import OrderService
from service.config import Settings
from service.domain.local_effects import EntitlementCheck, RefundEntitlement
from service.store.entitlements import EntitlementStore
from service.store.keys import entitlement_consumption_key, entitlement_key
from testkit.factories import unique, walk_in
from testkit.kafka_tap import TopicTap, produce
from tests.integration.observe import Observer, commands_topic
from tests.waiting import eventually

CLIENT = "client-a"
LIFETIME_SECONDS = 1
"""Short enough to watch a record expire."""


@pytest.fixture
def redis(store_redis: Redis) -> Redis:
    """Every store test here runs on a single node and on a Redis Cluster."""
    return store_redis


async def _granted(store: EntitlementStore, units: int) -> str:
    credential = unique("CARD")
    await store.grant(CLIENT, credential, units)
    return credential


def _refund(credential: str, input_id: str) -> RefundEntitlement:
    return RefundEntitlement(client_id=CLIENT, credential=credential, consumption_id=input_id)


async def test_a_consumption_record_expires_after_its_lifetime_and_leaves_the_balance(redis: Redis) -> None:
    """The record of what a walk-in took carries the lifetime as its expiry, goes at its end, and leaves the
    credential's hash holding its balance alone."""
    store = EntitlementStore(redis, record_seconds=LIFETIME_SECONDS)
    credential = await _granted(store, 5)
    record = entitlement_consumption_key(CLIENT, credential, "cmd/a/1")

    assert await store.consume([(CLIENT, credential, "cmd/a/1", 2)]) == [EntitlementCheck.CONSUMED]

    assert 0 < await redis.pttl(record) <= LIFETIME_SECONDS * 1000
    assert await redis.get(record) == b"2"
    await eventually(lambda: _gone(redis, record), timeout=LIFETIME_SECONDS + 5)
    assert await redis.hgetall(entitlement_key(CLIENT, credential)) == {b"balance": b"3"}


async def _gone(redis: Redis, key: str) -> bool:
    return await redis.exists(key) == 0


async def test_by_default_a_record_lives_as_long_as_a_finished_order(redis: Redis) -> None:
    """The default lifetime is the default order retention (30 days)."""
    store = EntitlementStore(redis)
    credential = await _granted(store, 1)
    await store.consume([(CLIENT, credential, "cmd/a/1", 1)])
    thirty_days_ms = 30 * 24 * 3600 * 1000
    pttl = await redis.pttl(entitlement_consumption_key(CLIENT, credential, "cmd/a/1"))
    assert thirty_days_ms - 60_000 < pttl <= thirty_days_ms


async def test_a_re_delivered_walk_in_consumes_once_within_the_lifetime(redis: Redis) -> None:
    """A second consumption by the same input takes nothing; another input takes its own units."""
    store = EntitlementStore(redis, record_seconds=600)
    credential = await _granted(store, 5)

    for _ in range(3):
        assert await store.consume([(CLIENT, credential, "cmd/a/1", 2)]) == [EntitlementCheck.CONSUMED]
    assert await store.balance(CLIENT, credential) == 3
    assert await store.consume([(CLIENT, credential, "cmd/a/2", 2)]) == [EntitlementCheck.CONSUMED]
    assert await store.consume([(CLIENT, credential, "cmd/a/3", 2)]) == [EntitlementCheck.EXHAUSTED]
    assert await store.balance(CLIENT, credential) == 1


async def test_a_refund_gives_the_units_back_exactly_once_and_keeps_the_expiry(redis: Redis) -> None:
    """Replayed refunds give nothing more; the record stays bound by its first expiry, and a walk-in
    re-delivered after its refund still takes nothing."""
    store = EntitlementStore(redis, record_seconds=600)
    credential = await _granted(store, 5)
    await store.consume([(CLIENT, credential, "cmd/a/1", 2)])
    record = entitlement_consumption_key(CLIENT, credential, "cmd/a/1")
    expiry_before = await redis.pttl(record)

    assert await store.refund([_refund(credential, "cmd/a/1")] * 2) == [2, 0]
    assert await store.refund([_refund(credential, "cmd/a/1")]) == [0]

    assert await store.balance(CLIENT, credential) == 5
    assert 0 < await redis.pttl(record) <= expiry_before
    assert await store.consume([(CLIENT, credential, "cmd/a/1", 2)]) == [EntitlementCheck.CONSUMED]
    assert await store.balance(CLIENT, credential) == 5


async def test_a_refund_for_a_record_that_expired_or_never_was_gives_nothing(redis: Redis) -> None:
    """Past the lifetime (long after any cancellation window) there is nothing to refund, never twice."""
    store = EntitlementStore(redis, record_seconds=LIFETIME_SECONDS)
    credential = await _granted(store, 5)
    await store.consume([(CLIENT, credential, "cmd/a/1", 2)])
    await eventually(
        lambda: _gone(redis, entitlement_consumption_key(CLIENT, credential, "cmd/a/1")),
        timeout=LIFETIME_SECONDS + 5,
    )

    assert await store.refund([_refund(credential, "cmd/a/1"), _refund(credential, "cmd/a/9")]) == [0, 0]
    assert await store.balance(CLIENT, credential) == 3


async def test_records_stored_in_the_hash_before_are_honoured_then_dropped(redis: Redis) -> None:
    """`c:`/`r:` fields written by the previous version: a re-delivered input recorded that way consumes
    nothing, its refund comes once (none for one refunded before); once the lifetime has passed since they
    were first seen, the next consumption rewrites the hash to its balance."""
    store = EntitlementStore(redis, record_seconds=LIFETIME_SECONDS)
    credential = unique("CARD")
    hash_key = entitlement_key(CLIENT, credential)
    await redis.hset(
        hash_key, mapping={"balance": 5, "c:cmd/a/old": 2, "c:cmd/a/refunded": 1, "r:cmd/a/refunded": 1}
    )

    assert await store.consume([(CLIENT, credential, "cmd/a/old", 2)]) == [EntitlementCheck.CONSUMED]
    assert await store.balance(CLIENT, credential) == 5
    legacy_until = int(await redis.hget(hash_key, "legacy_until") or 0)
    assert abs(legacy_until - (time.time() + LIFETIME_SECONDS)) < 5
    refunds = [_refund(credential, "cmd/a/old"), _refund(credential, "cmd/a/old")]
    assert await store.refund([*refunds, _refund(credential, "cmd/a/refunded")]) == [2, 0, 0]
    assert await store.balance(CLIENT, credential) == 7

    await eventually(lambda: _redis_time_reached(redis, legacy_until), timeout=LIFETIME_SECONDS + 5)
    assert await store.consume([(CLIENT, credential, "cmd/a/new", 1)]) == [EntitlementCheck.CONSUMED]

    assert await redis.hgetall(hash_key) == {b"balance": b"6"}
    assert await redis.get(entitlement_consumption_key(CLIENT, credential, "cmd/a/new")) == b"1"


async def _redis_time_reached(redis: Redis, epoch_seconds: int) -> bool:
    seconds, _ = await redis.time()
    return int(seconds) >= epoch_seconds


async def test_the_service_keeps_a_walk_ins_record_for_the_order_retention(
    service: OrderService, settings: Settings, producer: AIOKafkaProducer, tap: TopicTap
) -> None:
    """The running service records a walk-in's units under its own key, expiring with the configured order
    retention; the credential's hash holds only the balance."""
    credential = unique("CARD")
    await service.entitlements.grant(CLIENT, credential, 3)
    command = walk_in(credential=credential, passengers=2)

    await produce(producer, commands_topic(settings, CLIENT), command, command.order_id)
    await Observer(tap, settings).status(command.order_id, OrderStatus.USED)

    record = entitlement_consumption_key(CLIENT, credential, f"cmd/{CLIENT}/{command.command_id}")
    retention_ms = settings.order_retention_seconds * 1000
    assert retention_ms - 60_000 < await service.redis.pttl(record) <= retention_ms
    assert await service.redis.hgetall(entitlement_key(CLIENT, credential)) == {b"balance": b"1"}
