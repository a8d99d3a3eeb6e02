"""The relay in the `per_client` topic layout: it reads every client's status and rejections topics by
pattern."""

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
from tests.relay.conftest import BOTH, register, rejection, relay_settings, status_event, subscribe

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


async def test_every_clients_rejections_are_delivered_to_its_subscribed_endpoints(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """A rejection on each client's own rejections topic reaches that client's endpoint subscribed to
    rejections, and no other client's."""
    refused = {client: rejection(f"ORD-{client}", client) for client in CLIENTS}
    endpoints = {client: await subscribe(redis, client, receiver.url, *BOTH) for client in CLIENTS}
    for client, event in refused.items():
        topic = client_topics(settings, client).command_rejected
        await producer.send_and_wait(topic, event.model_dump_json().encode(), key=event.order_id.encode())

    for client, event in refused.items():
        [got] = await receiver.wait_for(lambda event=event: receiver.delivered(event.event_id))  # type: ignore[misc]
        assert (got.body["type"], got.body["client_id"]) == ("command_rejected", client)
        assert receiver.verifies(got, endpoints[client].secrets[0].secret)
        other = next(c for c in CLIENTS if c != client)
        assert await relay.deliveries.attempts(endpoints[other].endpoint_id, 100, event.event_id) == []
