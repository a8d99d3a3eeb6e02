"""The circuit breaker, two relay instances sharing the work, and the admin CLI."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from service.devstack import Endpoints
from service.kafka import ensure_topics
from service.relay.app import build_relay, relay_topics
from service.store.webhook_endpoints import Endpoint, EndpointState, EndpointStore
from testkit.webhook_receiver import Reply, WebhookReceiver
from tests.integration.conftest import until_assigned
from tests.relay.conftest import publish, register, relay_settings, status_event
from tests.waiting import eventually


async def test_repeated_failures_pause_the_endpoint(
    stack: Endpoints, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """Three failures in a row open the breaker: the endpoint is PAUSED and gets no attempt meanwhile."""
    # One attempt at a time, so that none is still in flight when the breaker opens.
    settings = relay_settings(
        stack, relay_breaker_failures=3, relay_breaker_pause_seconds=60, relay_concurrency_per_endpoint=1
    )
    await ensure_topics(settings.kafka_bootstrap_servers, relay_topics(settings), 4, 1)
    relay = build_relay(settings)
    await relay.start()
    try:
        await until_assigned(relay.broker)
        endpoint = await register(redis, "client-a", receiver.url)
        receiver.default = Reply(500)
        await publish(producer, settings, *(status_event(f"ORD-B-{n}", 1) for n in range(5)))

        paused = await eventually(lambda: _paused(redis, endpoint.endpoint_id))
        attempts_when_paused = len(receiver.received)
        await relay.worker.dispatch_due()  # another round while paused starts nothing

        assert paused.consecutive_failures >= 3
        assert attempts_when_paused == 3
        assert len(receiver.received) == attempts_when_paused
    finally:
        await relay.stop()


async def _paused(redis: Redis, endpoint_id: str) -> Endpoint | None:
    endpoint = await EndpointStore(redis).get(endpoint_id)
    paused = endpoint is not None and endpoint.effective_state(datetime.now(UTC)) is EndpointState.PAUSED
    return endpoint if paused else None


async def test_two_relay_instances_deliver_each_event_once(
    stack: Endpoints, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """Two instances in one group share the partitions and the delivery work: every event arrives once."""
    settings = relay_settings(stack)
    await ensure_topics(settings.kafka_bootstrap_servers, relay_topics(settings), 4, 1)
    relays = [build_relay(settings), build_relay(settings)]
    for relay in relays:
        await relay.start()
    try:
        for relay in relays:
            await until_assigned(relay.broker)
        await register(redis, "client-a", receiver.url)
        events = [status_event(f"ORD-TWO-{n}", s) for n in range(20) for s in (1, 2)]

        await publish(producer, settings, *events)

        await receiver.wait_for(lambda: len(receiver.delivered()) >= len(events))
        ids = [r.webhook_id for r in receiver.delivered()]
        assert sorted(ids) == sorted(e.event_id for e in events), "each event exactly once"
    finally:
        for relay in relays:
            await relay.stop()


def test_cli_registers_lists_without_secrets_and_refuses_unsafe_urls(stack: Endpoints) -> None:
    """`orders webhooks add` shows the secret once; `list` never does; a metadata address is refused."""
    env = {**os.environ, **stack.environ(), "ORDERS_RELAY_REQUIRE_HTTPS": "false"}
    client = f"cli-{os.getpid()}"

    def orders(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", "webhooks", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    refused = orders("add", "--client", client, "--url", "http://169.254.169.254/latest")
    added = orders("add", "--client", client, "--url", "http://93.184.215.14/hooks", "--status", "1")
    listed = orders("list", "--client", client)

    assert refused.returncode != 0 and "refused" in refused.stderr
    created = json.loads(added.stdout)
    assert created["secret"].startswith("whsec_") and created["status_filter"] == [1]
    [shown] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert shown["endpoint_id"] == created["endpoint_id"]
    assert "secret" not in listed.stdout and created["secret"] not in listed.stdout
    assert shown["state"] == EndpointState.ACTIVE
