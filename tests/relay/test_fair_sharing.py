"""Fair sharing: attempts in flight are capped per endpoint and per client, so that a client with many slow
endpoints holds only its own share of the relay, and another client's endpoint is served beside it."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from service.config import RelaySettings
from service.devstack import Endpoints
from service.kafka import ensure_topics
from service.relay.app import Relay, build_relay, relay_topics
from service.store.webhook_endpoints import EndpointStore
from testkit.factories import unique
from testkit.webhook_receiver import Reply, WebhookReceiver
from tests.integration.conftest import until_assigned
from tests.relay.conftest import publish, relay_settings, status_event
from tests.waiting import eventually

PER_ENDPOINT = 4
PER_CLIENT = 6
SLOW_ENDPOINTS = 4
"""Together they could take 16 attempts at once; their client may take 6."""


class InFlight:
    """Requests being answered at once across several receivers, and the most there ever were."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0


class CountingReceiver(WebhookReceiver):
    """A receiver that counts the requests it is answering (each answer is slow, within the timeout)."""

    def __init__(self, in_flight: InFlight) -> None:
        super().__init__()
        self._in_flight = in_flight

    async def _handle(self, request: web.Request) -> web.Response:
        self._in_flight.now += 1
        self._in_flight.peak = max(self._in_flight.peak, self._in_flight.now)
        try:
            return await super()._handle(request)
        finally:
            self._in_flight.now -= 1


@pytest.fixture
async def slow_receivers() -> AsyncIterator[tuple[InFlight, list[CountingReceiver]]]:
    in_flight = InFlight()
    receivers = [CountingReceiver(in_flight) for _ in range(SLOW_ENDPOINTS)]
    for receiver in receivers:
        receiver.default = Reply(200, delay=0.8)  # slow, but inside the 2 s timeout: every attempt counts
        await receiver.start()
    yield in_flight, receivers
    for receiver in receivers:
        await receiver.stop()


async def test_a_client_with_many_slow_endpoints_holds_its_share_only(
    stack: Endpoints,
    receiver: WebhookReceiver,
    slow_receivers: tuple[InFlight, list[CountingReceiver]],
    producer: AIOKafkaProducer,
    redis: Redis,
) -> None:
    """Client `greedy` has 4 slow endpoints with 10 orders queued each: at most 6 of its requests are in
    flight at once (not 4 by 4), and they are 6 (the cap is what holds it). Client `modest`'s endpoint gets
    its events within a second meanwhile."""
    in_flight, slow = slow_receivers
    settings = relay_settings(
        stack,
        relay_timeout_seconds=2.0,
        relay_concurrency_per_endpoint=PER_ENDPOINT,
        relay_concurrency_per_client=PER_CLIENT,
    )
    relay = await _started(settings)
    try:
        store, greedy_client, modest_client = EndpointStore(redis), unique("greedy"), unique("modest")
        for slow_receiver in slow:
            await store.create(greedy_client, slow_receiver.url, datetime.now(UTC))
        await store.create(modest_client, receiver.url, datetime.now(UTC))
        greedy = [status_event(f"ORD-G-{n}", 1, greedy_client) for n in range(10)]
        modest = [status_event(f"ORD-M-{n}", 1, modest_client) for n in range(10)]

        await publish(producer, settings, *greedy)
        await eventually(lambda: in_flight.now >= PER_CLIENT, timeout=10)
        started = asyncio.get_running_loop().time()
        await publish(producer, settings, *modest)
        await receiver.wait_for(lambda: len(receiver.delivered()) == len(modest), timeout=10)
        modest_took = asyncio.get_running_loop().time() - started
        await eventually(lambda: sum(len(r.delivered()) for r in slow) >= 3 * PER_CLIENT, timeout=20)
    finally:
        await relay.stop()

    assert in_flight.peak == PER_CLIENT, f"{in_flight.peak} of greedy's requests were in flight at once"
    assert modest_took < 1.0, f"modest waited {modest_took:.2f}s beside greedy"


async def _started(settings: RelaySettings) -> Relay:
    await ensure_topics(settings.kafka_bootstrap_servers, relay_topics(settings), 4, 1)
    relay = build_relay(settings)
    await relay.start()
    await until_assigned(relay.broker)
    return relay
