"""Composition root of the webhook relay: status events in, queued per endpoint, delivered by the worker."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import ConsumerRecord
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy
from pydantic import ValidationError
from redis.asyncio import Redis

from contracts.events import OrderStatusChanged
from service import metrics
from service.app import build_broker
from service.clock import utc_now
from service.config import RelaySettings
from service.consumers.routes import BATCH_POLL_MS, raw_records
from service.consumers.spec import documented_payload
from service.relay.sender import HttpClient, http_client
from service.relay.worker import DeliveryWorker
from service.store.client import connect_with
from service.store.webhook_deliveries import DeliveryStore, QueuedEvent
from service.store.webhook_endpoints import EndpointState, EndpointStore

log = logging.getLogger(__name__)


@dataclass
class Relay:
    """The wired relay."""

    broker: KafkaBroker
    redis: "Redis"
    endpoints: EndpointStore
    deliveries: DeliveryStore
    worker: DeliveryWorker
    client: HttpClient
    app: FastStream

    async def start(self) -> None:
        """Consume and deliver (for embedding in tests; `app.run()` does this for the CLI)."""
        await self.broker.start()
        await self.worker.start()

    async def stop(self) -> None:
        """Stop consuming, let attempts in flight finish, close connections."""
        await self.worker.stop()
        await self.broker.stop()
        await self.close()

    async def close(self) -> None:
        """Release the HTTP and Redis connections."""
        await self.client.aclose()
        await self.redis.aclose()


class EventQueuer:
    """Queues each status event for every endpoint of its client that wants it."""

    def __init__(
        self,
        endpoints: EndpointStore,
        deliveries: DeliveryStore,
        clock: Callable[[], datetime],
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._endpoints = endpoints
        self._deliveries = deliveries
        self._clock = clock
        self._on_queued = on_queued

    async def __call__(self, records: Sequence[ConsumerRecord]) -> None:
        """Queue a batch of events; offsets are committed after this returns, so nothing is skipped."""
        events: list[tuple[OrderStatusChanged, bytes]] = []
        for record in records:
            try:
                events.append((OrderStatusChanged.model_validate_json(record.value or b""), record.value))
            except ValidationError:
                log.warning("relay.bad_event", extra={"partition": record.partition, "offset": record.offset})
        by_client = await self._endpoints.for_clients(sorted({event.client_id for event, _ in events}))
        queued = [
            QueuedEvent(endpoint.endpoint_id, event.order_id, event.event_id, event.sequence, body)
            for event, body in events
            for endpoint in by_client[event.client_id]
            if endpoint.state is not EndpointState.DISABLED and endpoint.wants(event.status)
        ]
        await self._deliveries.enqueue(queued, self._clock())
        metrics.WEBHOOK_QUEUED.inc(len(queued))
        if queued:
            self._on_queued()  # this instance's worker delivers them now, not at its next poll


def build_relay(settings: RelaySettings, clock: Callable[[], datetime] = utc_now) -> Relay:
    """Wire the relay from settings; connects nothing yet."""
    broker = build_broker(settings, client_id="orders-relay")
    redis = connect_with(settings)
    endpoints, deliveries = EndpointStore(redis), DeliveryStore(redis)
    client = http_client()
    worker = DeliveryWorker(endpoints, deliveries, client, settings, clock)
    subscriber = broker.subscriber(
        settings.topic_status_changed,
        batch=True,
        max_records=settings.max_batch,
        group_id=settings.relay_group,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        batch_timeout_ms=BATCH_POLL_MS,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        decoder=raw_records,
        title="relay_status_changed",
        description="The relay queues every status event for the endpoints its client registered.",
    )
    subscriber(documented_payload(OrderStatusChanged)(EventQueuer(endpoints, deliveries, clock, worker.wake)))
    app = FastStream(broker, logger=logging.getLogger("orders-relay.app"))
    relay = Relay(broker, redis, endpoints, deliveries, worker, client, app)
    app.after_startup(worker.start)
    app.on_shutdown(worker.stop)
    app.after_shutdown(relay.close)
    return relay
