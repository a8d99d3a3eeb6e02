"""What keeps the relay fast: queued events are attempted at once; concurrent settles share round trips."""

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service.clock import utc_now
from service.config import RelaySettings
from service.devstack import Endpoints
from service.kafka import ensure_topics
from service.relay.app import build_relay, relay_topics
from service.relay.sender import HttpClient
from service.relay.worker import DeliveryWorker
from service.store.raw_pipeline import RawPipeline
from service.store.scripts import Coalesced, LuaScript
from service.store.webhook_deliveries import DeliveryStore, QueuedEvent
from service.store.webhook_endpoints import EndpointStore
from testkit.factories import unique
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


async def test_coalesced_calls_share_a_pipeline_fail_alone_and_reload_a_forgotten_script(
    redis: Redis,
) -> None:
    """Calls made together go in one round trip, packed by hiredis and read off the connection: an error
    reply is its caller's alone, as through redis-py's pipeline, and a script Redis forgot (a restart, a
    flush) is loaded again and run."""
    coalesced = Coalesced(LuaScript("claim_due"), redis)
    key = f"test:{{{unique('packed')}}}:due"
    await redis.zadd(key, {"a": 1, "b": 2})

    results: list[object] = await asyncio.gather(
        coalesced.run([key], [10, 1000, 1]),
        coalesced.run([key], [10, 1000, "not a number"]),
        coalesced.run([key], [10, 1000, 1]),
        return_exceptions=True,
    )
    await redis.script_flush()
    await redis.zadd(key, {"c": 3})
    after_flush = await coalesced.run([key], [10, 1000, 1])

    good, bad, other = results
    assert good == [b"a"]
    assert isinstance(bad, ResponseError)
    assert other == [b"b"]
    assert after_flush == [b"c"]
    await redis.delete(key)


async def test_a_coalesced_call_goes_at_once_while_one_pipeline_is_in_flight_and_the_rest_wait_together(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two round trips in flight at most: a call made while one pipeline is out goes at once in a second
    (not after the first's answer), and the calls made while both are out share the next pipeline."""
    sizes: list[int] = []
    in_flight = peak = 0
    execute = RawPipeline.execute

    async def counted(pipeline: RawPipeline, *, raise_on_error: bool = True) -> list[Any]:
        nonlocal in_flight, peak
        sizes.append(len(pipeline))
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await execute(pipeline, raise_on_error=raise_on_error)
        finally:
            in_flight -= 1

    monkeypatch.setattr(RawPipeline, "execute", counted)
    coalesced = Coalesced(LuaScript("claim_due"), redis)
    await coalesced.run([f"test:{{{unique('warm')}}}:due"], [10, 1000, 1])  # the script loaded, one call
    sizes.clear()
    keys = [f"test:{{{unique('coalesced')}}}:due" for _ in range(6)]
    for i, key in enumerate(keys):
        await redis.zadd(key, {f"q{i}": 1})

    made = asyncio.Event()

    async def call(key: str) -> object:
        made.set()  # `run` queues the call (and starts a sender if one may) before this task yields
        return await coalesced.run([key], [10, 1000, 1])

    calls = []
    for key in keys:
        made.clear()
        calls.append(asyncio.create_task(call(key)))
        await made.wait()  # the call is made before the next one is
    results = await asyncio.gather(*calls)

    assert results == [[f"q{i}".encode()] for i in range(6)]
    assert peak == 2
    assert sizes[:2] == [1, 1]  # the first two went at once, each alone
    assert sum(sizes) == 6 and len(sizes) < 6  # the other four shared pipelines
    await redis.delete(*keys)


async def test_a_call_made_as_the_last_pipeline_ends_is_still_sent(redis: Redis) -> None:
    """The caller of a pipeline's last call wakes up before that pipeline's sender has finished; a call it
    makes at once must start a sender of its own, not wait for one that has already stopped looking."""
    coalesced = Coalesced(LuaScript("claim_due"), redis, pipelines=1)
    key = f"test:{{{unique('ending')}}}:due"
    await redis.zadd(key, {"a": 1, "b": 2})

    first = await coalesced.run([key], [10, 1000, 1])
    async with asyncio.timeout(5):  # in this task, at once (`wait_for` would start the call a step later)
        second = await coalesced.run([key], [10, 1000, 1])

    assert (first, second) == ([b"a"], [b"b"])
    await redis.delete(key)


async def test_a_slot_goes_on_through_its_endpoints_due_queues_without_another_round(
    stack: Endpoints, receiver: WebhookReceiver, redis: Redis
) -> None:
    """One round, one slot: after each delivery the slot takes the order's next event (the settle keeps the
    queue) or claims the endpoint's next due queue itself, so everything is delivered, each order in
    sequence, without the loop running another round."""
    settings = relay_settings(stack, relay_concurrency_per_endpoint=1)
    endpoint = await register(redis, unique("client"), receiver.url)
    deliveries, endpoints = DeliveryStore(redis), EndpointStore(redis)
    events = [status_event(o, n) for o, n in (("ORD-S1", 1), ("ORD-S1", 2), ("ORD-S2", 1), ("ORD-S3", 1))]
    queued = [QueuedEvent.of(endpoint.endpoint_id, e, e.model_dump_json().encode()) for e in events]
    await deliveries.enqueue(queued, utc_now())
    client = HttpClient(settings.relay_allowed_networks)
    worker = DeliveryWorker(endpoints, deliveries, client, settings, utc_now)
    try:
        started = await worker.dispatch_due()  # one round, and the loop never started
        await receiver.wait_for(lambda: len(receiver.delivered()) == 4, timeout=10)
    finally:
        await worker.stop()
        await client.aclose()

    # One slot for this endpoint (its concurrency is 1); the shared Redis's due index may name other
    # tests' endpoints with retries due now, and the round starts their attempts too.
    assert started >= 1
    delivered = [(r.body["order_id"], r.body["sequence"]) for r in receiver.delivered()]
    assert sorted(delivered) == [("ORD-S1", 1), ("ORD-S1", 2), ("ORD-S2", 1), ("ORD-S3", 1)]
    assert delivered.index(("ORD-S1", 1)) < delivered.index(("ORD-S1", 2))
    assert await deliveries.backlogs([endpoint.endpoint_id]) == {endpoint.endpoint_id: 0}
