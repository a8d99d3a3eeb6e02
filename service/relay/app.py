"""Composition root of the webhook relay: status events in, queued per endpoint, delivered by the worker."""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from pydantic import ValidationError
from redis.asyncio import Redis

from contracts.events import OrderStatusChanged
from service import metrics
from service.clock import utc_now
from service.config import RelaySettings
from service.kafka import ConsumingProcess, build_app, build_broker, subscribe_batches
from service.relay.sender import HttpClient, http_client
from service.relay.worker import DeliveryWorker
from service.store.client import connect_with
from service.store.webhook_deliveries import DeliveryStore, QueuedEvent
from service.store.webhook_endpoints import EndpointState, EndpointStore

log = logging.getLogger(__name__)

CLIENT_ID = "orders-relay"


@dataclass
class Relay(ConsumingProcess):
    """The wired relay (`start` and `stop` for embedding, `app.run()` for the CLI: the same sequence)."""

    broker: KafkaBroker
    redis: "Redis"
    endpoints: EndpointStore
    deliveries: DeliveryStore
    worker: DeliveryWorker
    client: HttpClient

    def __post_init__(self) -> None:
        self.app = build_app(self.broker, client_id=CLIENT_ID, loops=[self.worker], close=self.close)

    async def close(self) -> None:
        """Release the HTTP and Redis connections."""
        await self.client.aclose()
        await self.redis.aclose()


class EventQueuer:
    """Queues each status event for every endpoint of its client that wants it."""

    def __init__(
        self,
        *,
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
            QueuedEvent(
                endpoint_id=endpoint.endpoint_id,
                order_id=event.order_id,
                event_id=event.event_id,
                sequence=event.sequence,
                body=body,
            )
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
    broker = build_broker(settings, client_id=CLIENT_ID)
    redis = connect_with(settings)
    endpoints, deliveries = EndpointStore(redis), DeliveryStore(redis)
    client = http_client()
    worker = DeliveryWorker(endpoints, deliveries, client, settings, clock)
    subscribe_batches(
        broker,
        settings,
        topic=settings.topic_status_changed,
        group=settings.relay_group,
        title="relay_status_changed",
        description="The relay queues every status event for the endpoints its client registered.",
        payload=OrderStatusChanged,
        handler=EventQueuer(endpoints=endpoints, deliveries=deliveries, clock=clock, on_queued=worker.wake),
    )
    return Relay(broker, redis, endpoints, deliveries, worker, client)
