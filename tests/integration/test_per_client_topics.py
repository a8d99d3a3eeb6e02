"""The `per_client` topic layout on the real broker: the topic a command is written to says who sent it."""

import functools
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.events import CommandRejected, OrderStatusChanged
from contracts.statuses import OrderStatus, RejectionCode
from service.config import Settings, TopicLayout
from service.devstack import Endpoints
from service.kafka import client_topics, ensure_client_topics, ensure_topics, service_topics
from service.store.orders import OrderStore
from testkit.factories import prebooking
from testkit.kafka_tap import TopicTap, produce
from tests.integration.conftest import isolated_settings

CLIENTS = ("acme-air", "beta-air")


@pytest.fixture(scope="module")
async def settings(stack: Endpoints) -> Settings:
    """Per-client settings; the service's topics and two clients' topics exist before the service starts."""
    base = isolated_settings(stack, f"t{uuid.uuid4().hex[:8]}")
    settings = base.model_copy(
        update={"topic_layout": TopicLayout.PER_CLIENT, "kafka_metadata_max_age_ms": 1000}
    )
    await ensure_topics(
        settings.kafka_bootstrap_servers, service_topics(settings), settings.topic_partitions, 1
    )
    for client in CLIENTS:
        await ensure_client_topics(settings.model_copy(update={"topic_replication_factor": 1}), client)
    return settings


@pytest.fixture(scope="module")
async def tap(settings: Settings) -> AsyncIterator[TopicTap]:
    """Both clients' event and rejection topics."""
    names = [t for c in CLIENTS for t in client_topics(settings, c).all()[1:]]
    tap = TopicTap(settings.kafka_bootstrap_servers, names)
    await tap.start()
    yield tap
    await tap.stop()


def _events(tap: TopicTap, topic: str) -> list[OrderStatusChanged]:
    return tap.decoded(topic, OrderStatusChanged)


def _confirmed(tap: TopicTap, topic: str, order_id: str) -> list[OrderStatusChanged]:
    return [e for e in _events(tap, topic) if e.order_id == order_id and e.status is OrderStatus.CONFIRMED]


async def test_a_command_naming_another_client_is_rejected_and_changes_nothing(
    service: object, settings: Settings, tap: TopicTap, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """beta-air's client_id written to acme-air's topic: CLIENT_MISMATCH to acme-air, nothing to beta-air."""
    acme, beta = (client_topics(settings, c) for c in CLIENTS)
    spoofed = prebooking("RES-OK", client_id="beta-air")
    await produce(producer, acme.commands, spoofed, spoofed.order_id)
    rejection = await tap.wait_for(
        lambda: tap.decoded(acme.command_rejected, CommandRejected, lambda r: r.order_id == spoofed.order_id)
    )
    assert rejection[0].code is RejectionCode.CLIENT_MISMATCH
    assert rejection[0].client_id == "acme-air"
    for client_id in CLIENTS:
        assert await OrderStore(redis).get(client_id, spoofed.order_id) is None
    assert not [
        r for r in tap.records[beta.command_rejected] if spoofed.order_id.encode() in (r.value or b"")
    ]
    assert not [e for e in _events(tap, beta.status_changed) if e.order_id == spoofed.order_id]
    # The command_id is not claimed: beta-air itself may still use it, on its own topic.
    await produce(producer, beta.commands, spoofed, spoofed.order_id)
    await tap.wait_for(
        lambda: [e for e in _events(tap, beta.status_changed) if e.order_id == spoofed.order_id]
    )


async def test_each_clients_event_topic_carries_only_its_orders(
    service: object, simulator: None, settings: Settings, tap: TopicTap, producer: AIOKafkaProducer
) -> None:
    """Each client's status events go to its own topic, and to no other client's."""
    orders = {}
    for client in CLIENTS:
        command = prebooking("RES-OK", client_id=client)
        orders[client] = command.order_id
        await produce(producer, client_topics(settings, client).commands, command, command.order_id)
    for client in CLIENTS:
        topic = client_topics(settings, client).status_changed
        await tap.wait_for(functools.partial(_confirmed, tap, topic, orders[client]))
        assert {e.client_id for e in _events(tap, topic)} == {client}


async def test_a_client_created_while_the_service_runs_is_read(
    service: object, settings: Settings, producer: AIOKafkaProducer
) -> None:
    """The pattern subscription finds a new client's commands topic at a metadata refresh."""
    client = f"late-{uuid.uuid4().hex[:6]}"
    await ensure_client_topics(settings, client)
    topics = client_topics(settings, client)
    tap = TopicTap(settings.kafka_bootstrap_servers, [topics.status_changed])
    await tap.start()
    try:
        command = prebooking("RES-OK", client_id=client)
        await produce(producer, topics.commands, command, command.order_id)
        await tap.wait_for(lambda: _events(tap, topics.status_changed), timeout=60)
    finally:
        await tap.stop()
