"""Delivering what is queued in Redis does not wait for the Kafka consumer."""

import asyncio
from datetime import UTC, datetime

from redis.asyncio import Redis

from service.devstack import Endpoints
from service.kafka import ensure_topics
from service.relay.app import build_relay, relay_topics
from service.store.webhook_deliveries import DeliveryStore, QueuedEvent
from testkit.factories import unique
from testkit.webhook_receiver import WebhookReceiver
from tests.relay.conftest import register, relay_settings, status_event


async def test_a_backlog_queued_before_a_restart_is_delivered_before_the_consumer_is_assigned(
    stack: Endpoints, receiver: WebhookReceiver, redis: Redis
) -> None:
    """Events queued in Redis while no relay ran are delivered within a second of the relay's start, while
    its consumer still waits for its partitions (a 10 s session timeout, as in production, makes that
    wait take seconds here)."""
    settings = relay_settings(stack, kafka_session_timeout_ms=10_000, kafka_heartbeat_interval_ms=3_000)
    await ensure_topics(settings.kafka_bootstrap_servers, relay_topics(settings), 4, 1)
    client = unique("client")
    endpoint = await register(redis, client, receiver.url)
    backlog = [status_event(f"ORD-BACKLOG-{n}", 1, client) for n in range(5)]
    queued = [
        QueuedEvent(
            endpoint_id=endpoint.endpoint_id,
            order_id=event.order_id,
            event_id=event.event_id,
            sequence=event.sequence,
            body=event.model_dump_json().encode(),
        )
        for event in backlog
    ]
    await DeliveryStore(redis).enqueue(queued, datetime.now(UTC))
    relay = build_relay(settings)

    starting = asyncio.create_task(relay.start())
    try:
        await receiver.wait_for(lambda: len(receiver.delivered()) == len(backlog), timeout=1.0)
        consumers = [getattr(s, "consumer", None) for s in relay.broker.subscribers]
        assigned = any(c is not None and c.assignment() for c in consumers)
        assert not assigned, "the consumer was assigned first: this run does not show the independence"
        assert {r.webhook_id for r in receiver.delivered()} == {e.event_id for e in backlog}
    finally:
        await starting
        await relay.stop()
