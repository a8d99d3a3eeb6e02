"""Delivery-time SSRF refusal, and a relay killed outright in the middle of retrying."""

import asyncio
import os
import signal
import sys

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from service.config import RelaySettings
from service.devstack import Endpoints
from service.kafka import ensure_topics
from service.relay.app import build_relay, relay_topics
from service.store.webhook_deliveries import DeliveryStore
from service.store.webhook_endpoints import Endpoint, EndpointState, EndpointStore
from testkit.webhook_receiver import Reply, WebhookReceiver
from tests.integration.conftest import until_assigned
from tests.relay.conftest import publish, register, relay_settings, status_event
from tests.waiting import eventually


async def test_endpoint_resolving_to_a_forbidden_address_is_never_called(
    stack: Endpoints, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """Loopback not allowed: the endpoint is disabled as unsafe before any request leaves the relay."""
    settings = relay_settings(stack, relay_allowed_networks=[])
    await ensure_topics(settings.kafka_bootstrap_servers, relay_topics(settings), 4, 1)
    relay = build_relay(settings)
    await relay.start()
    try:
        await until_assigned(relay.broker)
        endpoint = await register(redis, "client-a", receiver.url)
        await publish(producer, settings, status_event("ORD-SSRF", 1))

        disabled = await eventually(lambda: _disabled(redis, endpoint.endpoint_id))

        assert "unsafe target" in (disabled.state_reason or "")
        assert receiver.received == []
    finally:
        await relay.stop()


async def _disabled(redis: Redis, endpoint_id: str) -> Endpoint | None:
    endpoint = await EndpointStore(redis).get(endpoint_id)
    return endpoint if endpoint is not None and endpoint.state is EndpointState.DISABLED else None


def relay_environment(settings: RelaySettings) -> dict[str, str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "REDIS_URL": settings.redis_url.get_secret_value(),
    }
    for name, value in settings.model_dump(mode="json").items():
        if name not in ("kafka_bootstrap_servers", "redis_url"):
            env[f"ORDERS_{name.upper()}"] = (
                value if isinstance(value, str) else __import__("json").dumps(value)
            )
    return env


@pytest.mark.timeout(120)
async def test_relay_killed_mid_retry_loses_nothing_and_doubles_no_attempt(
    stack: Endpoints, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """SIGKILL while waiting to retry: the restarted relay resumes from Redis; the receiver sees exactly the
    attempts the log records, one success per event, in order per order."""
    settings = relay_settings(stack, relay_retry_schedule_seconds=[1.0, 1.0, 1.0, 1.0])
    await ensure_topics(settings.kafka_bootstrap_servers, relay_topics(settings), 4, 1)
    endpoint = await register(redis, "client-a", receiver.url)
    receiver.script = [Reply(500)]
    events = [status_event("ORD-KILL", sequence) for sequence in (1, 2, 3)]
    deliveries = DeliveryStore(redis)

    first = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "relay", env=relay_environment(settings)
    )
    try:
        await publish(producer, settings, *events)
        # The failed first attempt is recorded (so a retry is pending) before the relay dies.
        await eventually(lambda: deliveries.attempts(endpoint.endpoint_id, 10), timeout=40)
        first.send_signal(signal.SIGKILL)
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
    second = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", "relay", env=relay_environment(settings)
    )
    try:
        await receiver.wait_for(lambda: len(receiver.delivered()) >= len(events), timeout=60)
    finally:
        second.send_signal(signal.SIGTERM)
        await second.wait()

    assert [r.body["sequence"] for r in receiver.delivered()] == [1, 2, 3]
    logged = await deliveries.attempts(endpoint.endpoint_id, 100)
    assert len(logged) == len(receiver.received), "every request the receiver saw was one recorded attempt"
    assert [r.status for r in receiver.received] == [500, 200, 200, 200]
