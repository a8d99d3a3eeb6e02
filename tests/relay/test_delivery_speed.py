"""What keeps the relay fast: queued events are attempted at once; concurrent settles share round trips."""

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from service.config import RelaySettings
from service.devstack import Endpoints
from service.kafka import ensure_topics
from service.relay.app import build_relay, relay_topics
from service.store.scripts import Coalesced, LuaScript
from testkit.webhook_receiver import WebhookReceiver
from tests.integration.conftest import until_assigned
from tests.relay.conftest import publish, register, relay_settings, status_event


@pytest.fixture
def settings(stack: Endpoints) -> RelaySettings:
    """A relay whose poll alone would take 30 s to notice anything."""
    return relay_settings(stack, relay_poll_seconds=30.0)


async def test_queued_events_are_delivered_without_waiting_for_the_poll(
    settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """Queuing wakes the delivery loop, and each finished attempt wakes it for the order's next event."""
    await register(redis, "client-a", receiver.url)
    await ensure_topics(settings.kafka_bootstrap_servers, relay_topics(settings), 4, 1)
    relay = build_relay(settings)
    await relay.start()
    try:
        await until_assigned(relay.broker)
        # Its first poll has run (at start); from here on only wakes start rounds for the next 30 s.
        events = [status_event("ORD-FAST", sequence) for sequence in (1, 2, 3)]

        await publish(producer, settings, *events)

        await receiver.wait_for(lambda: len(receiver.delivered()) == 3, timeout=10)
    finally:
        await relay.stop()
    assert [r.body["sequence"] for r in receiver.delivered()] == [1, 2, 3]


async def test_coalesced_calls_share_a_pipeline_and_fail_alone(redis: Redis) -> None:
    """Calls made together go in one round trip; a call that errors fails only its own caller."""
    coalesced = Coalesced(LuaScript("claim_due"), redis)
    key = "test:{coalesced}:due"
    await redis.zadd(key, {"a": 1, "b": 2})

    results: list[object] = await asyncio.gather(
        coalesced.run([key], [10, 1000, 1]),
        coalesced.run([key], [10, 1000, "not a number"]),
        coalesced.run([key], [10, 1000, 1]),
        return_exceptions=True,
    )

    good, bad, other = results
    assert good == [b"a"]
    assert isinstance(bad, Exception)
    assert other == [b"b"]
    await redis.delete(key)
