"""The relay in the `per_client` topic layout: it reads every client's status topic by pattern."""

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from service.config import RelaySettings, TopicLayout
from service.devstack import Endpoints
from service.kafka import client_topics, ensure_client_topics
from service.relay.app import Relay, build_relay
from testkit.webhook_receiver import WebhookReceiver
from tests.integration.conftest import until_assigned
from tests.relay.conftest import register, relay_settings, status_event

CLIENTS = ("acme-air", "beta-air")


@pytest.fixture
def settings(stack: Endpoints) -> RelaySettings:
    return relay_settings(stack, topic_layout=TopicLayout.PER_CLIENT, kafka_metadata_max_age_ms=1000)


@pytest.fixture
async def relay(settings: RelaySettings) -> AsyncIterator[Relay]:
    for client in CLIENTS:
        await ensure_client_topics(settings, client)
    relay = build_relay(settings)
    await relay.start()
    await until_assigned(relay.broker)
    yield relay
    await relay.stop()


async def test_every_clients_events_are_delivered_to_its_endpoints(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """An event on each client's own status topic reaches that client's endpoint."""
    events = {client: status_event(f"ORD-{client}", 1, client_id=client) for client in CLIENTS}
    for client, event in events.items():
        await register(redis, client, receiver.url)
        topic = client_topics(settings, client).status_changed
        await producer.send_and_wait(topic, event.model_dump_json().encode(), key=event.order_id.encode())
    for event in events.values():
        [got] = await receiver.wait_for(lambda event=event: receiver.delivered(event.event_id))  # type: ignore[misc]
        assert got.body["client_id"] == event.client_id
