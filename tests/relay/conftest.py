"""A relay on the real broker and Redis, fed status events directly on its input topic."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.events import CommandRejected, OrderStatusChanged, OrderView
from contracts.statuses import OneOrderStatus, OrderStatus, OrderType, RejectionCode
from service.config import RelaySettings
from service.devstack import Endpoints
from service.kafka import ensure_topics
from service.relay.app import Relay, build_relay, relay_topics
from service.store.webhook_deliveries import QueuedEvent
from service.store.webhook_endpoints import Endpoint, EndpointStore, WebhookEventType
from testkit.factories import unique
from testkit.webhook_receiver import WebhookReceiver
from tests.integration.conftest import until_assigned


def relay_settings(stack: Endpoints, **overrides: object) -> RelaySettings:
    """Fast retries, short timeouts, loopback allowed: the relay's clock sped up for tests."""
    run = f"r{uuid.uuid4().hex[:8]}"
    values: dict[str, object] = {
        **stack.settings(),
        "topic_status_changed": f"{run}.status",
        "topic_command_rejected": f"{run}.rejected",
        "relay_group": f"{run}.relay",
        "relay_require_https": False,
        "relay_allowed_networks": ["127.0.0.0/8"],
        "relay_timeout_seconds": 0.5,
        "relay_retry_schedule_seconds": [0.1, 0.1, 0.1],
        "relay_jitter": 0.0,
        "relay_poll_seconds": 0.02,
        "relay_breaker_failures": 1000,
        "kafka_session_timeout_ms": 3000,
        "kafka_heartbeat_interval_ms": 500,
        **overrides,
    }
    return RelaySettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(stack: Endpoints) -> RelaySettings:
    return relay_settings(stack)


@pytest.fixture
async def relay(settings: RelaySettings) -> AsyncIterator[Relay]:
    await ensure_topics(settings.kafka_bootstrap_servers, relay_topics(settings), 4, 1)
    relay = build_relay(settings)
    await relay.start()
    await until_assigned(relay.broker)
    yield relay
    await relay.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def producer(settings: RelaySettings) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
async def redis(settings: RelaySettings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url.get_secret_value())
    yield client
    await client.aclose()


def queued_status(endpoint_id: str, order_id: str, sequence: int) -> QueuedEvent:
    """A minimal status event queued straight into the store, for tests of the delivery steps alone."""
    body = json.dumps({"type": "order_status_changed", "order_id": order_id, "sequence": sequence})
    return QueuedEvent(
        endpoint_id=endpoint_id,
        order_id=order_id,
        event_id=f"ev-{order_id}-{sequence}",
        sequence=sequence,
        body=body.encode(),
    )


def status_event(order_id: str, sequence: int, client_id: str = "client-a") -> OrderStatusChanged:
    """The `sequence`-th event of an order (statuses are illustrative)."""
    status = OrderStatus.PENDING if sequence == 1 else OrderStatus.CONFIRMED
    return OrderStatusChanged(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{order_id}/{sequence}")),
        order_id=order_id,
        client_id=client_id,
        order_type=OrderType.PREBOOKING,
        sequence=sequence,
        status=status,
        status_name=status.label,
        previous_status=None if sequence == 1 else OrderStatus.PENDING,
        reason=None,
        occurred_at=datetime.now(UTC),
        order=OrderView(status=OneOrderStatus.OPENED, items=[]),
    )


async def publish(producer: AIOKafkaProducer, settings: RelaySettings, *events: OrderStatusChanged) -> None:
    """Put events on the relay's input topic, keyed by order."""
    for event in events:
        await producer.send_and_wait(
            settings.topic_status_changed, event.model_dump_json().encode(), key=event.order_id.encode()
        )


async def register(redis: Redis, client_id: str, url: str) -> Endpoint:
    """An endpoint registered straight in the store (the CLI and API add the SSRF check on top)."""
    return await EndpointStore(redis).create(client_id, url, datetime.now(UTC))


BOTH = (WebhookEventType.ORDER_STATUS_CHANGED, WebhookEventType.COMMAND_REJECTED)


def rejection(order_id: str, client_id: str) -> CommandRejected:
    """A `command_rejected` event, as the order service publishes it."""
    command_id = unique("cmd")
    return CommandRejected(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{client_id}/{command_id}/rejected")),
        command_id=command_id,
        command_type="cancel_order",
        order_id=order_id,
        client_id=client_id,
        code=RejectionCode.INVALID_STATE,
        message="order is Used",
        occurred_at=datetime.now(UTC),
    )


async def subscribe(redis: Redis, client_id: str, url: str, *types: WebhookEventType) -> Endpoint:
    """An endpoint registered straight in the store, for `types` (the default ones if none)."""
    return await EndpointStore(redis).create(client_id, url, datetime.now(UTC), subscribed=types or None)
