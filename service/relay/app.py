"""Composition root of the webhook relay: status events and command rejections in, queued per endpoint,
delivered by the worker."""

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from contracts.events import CommandRejected, OrderStatusChanged
from contracts.statuses import OrderStatus
from service import metrics, tracing
from service.clock import utc_now
from service.config import RelaySettings
from service.kafka import (
    ConsumingProcess,
    build_app,
    build_broker,
    client_topic_pattern,
    per_client,
    subscribe_batches,
)
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
        # The worker starts before the broker: delivering what is queued needs only Redis, and starting the
        # consumers waits for their group's assignment (a session timeout or more after a restart). It is
        # listed as a loop too, so that it stops before the broker drains; its second start does nothing.
        self.app = build_app(
            self.broker, client_id=CLIENT_ID, prepare=self.worker.start, loops=[self.worker], close=self.close
        )

    async def close(self) -> None:
        """Release the HTTP and Redis connections."""
        await self.client.aclose()
        await self.redis.aclose()


Event = OrderStatusChanged | CommandRejected


class StatusFields(msgspec.Struct):
    """What the relay reads of a status event: the order service publishes the contract's
    `OrderStatusChanged`, and the relay delivers the record's bytes as they are, so it needs only these to
    queue one. Validating the whole event (its ONE Order view) with pydantic was the largest cost of
    queuing; msgspec skips the fields it is not given."""

    event_id: str
    order_id: str
    client_id: str
    sequence: Annotated[int, msgspec.Meta(ge=1)]
    status: OrderStatus
    type: Literal["order_status_changed"] = "order_status_changed"


class RejectionFields(msgspec.Struct):
    """What the relay reads of a `CommandRejected` (see `StatusFields`)."""

    event_id: str
    order_id: str
    client_id: str
    type: Literal["command_rejected"] = "command_rejected"


Fields = StatusFields | RejectionFields

_FIELDS: dict[type[Event], type[Fields]] = {
    OrderStatusChanged: StatusFields,
    CommandRejected: RejectionFields,
}


class EventQueuer:
    """Queues each event of one topic (status events, or command rejections) for every endpoint of its
    client that wants it."""

    def __init__(
        self,
        *,
        model: type[Event],
        endpoints: EndpointStore,
        deliveries: DeliveryStore,
        clock: Callable[[], datetime],
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._model = model
        self._decoder: msgspec.json.Decoder[Fields] = msgspec.json.Decoder(_FIELDS[model])
        self._endpoints = endpoints
        self._deliveries = deliveries
        self._clock = clock
        self._on_queued = on_queued

    async def __call__(self, records: Sequence[ConsumerRecord]) -> None:
        """Queue a batch of events; offsets are committed after this returns, so nothing is skipped."""
        with tracing.consuming(records) as traced:  # a span per event while the batch is queued
            await self._queue(records, traced)

    async def _queue(self, records: Sequence[ConsumerRecord], traced: Mapping[int, str]) -> None:
        events: list[tuple[Fields, bytes, str | None]] = []
        for record in records:
            try:
                events.append(
                    (self._decoder.decode(record.value or b""), record.value, traced.get(id(record)))
                )
            except (msgspec.ValidationError, msgspec.DecodeError):
                extra = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
                log.warning("relay.bad_event", extra=extra)
        by_client = await self._endpoints.for_clients(sorted({event.client_id for event, _, _ in events}))
        queued = [
            QueuedEvent(
                endpoint_id=endpoint.endpoint_id,
                order_id=event.order_id,
                event_id=event.event_id,
                sequence=status.sequence if status else None,
                body=body,
                traceparent=traceparent,
            )
            for event, body, traceparent in events
            for status in [event if isinstance(event, StatusFields) else None]
            for endpoint in by_client[event.client_id]
            if endpoint.state is not EndpointState.DISABLED
            and (endpoint.wants_status(status.status) if status else endpoint.wants_rejections())
        ]
        await self._deliveries.enqueue(queued, self._clock())
        metrics.WEBHOOK_QUEUED.inc(len(queued))
        if queued:
            self._on_queued()  # this instance's worker delivers them now, not at its next poll


def relay_topics(settings: RelaySettings) -> list[str]:
    """The shared topics the relay reads (the order service creates them); in the `per_client` layout it
    reads every client's topics named after these."""
    return [settings.topic_status_changed, settings.topic_command_rejected]


def build_relay(settings: RelaySettings, clock: Callable[[], datetime] = utc_now) -> Relay:
    """Wire the relay from settings; connects nothing yet."""
    broker = build_broker(settings, client_id=CLIENT_ID)
    redis = connect_with(settings)
    endpoints = EndpointStore(redis)
    deliveries = DeliveryStore(
        redis,
        settled_memory_seconds=settings.idempotency_retention_seconds,
        done_memory_seconds=settings.order_retention_seconds,
    )
    client = http_client(settings.relay_allowed_networks)
    worker = DeliveryWorker(endpoints, deliveries, client, settings, clock)
    consumers: list[tuple[str, str, str, type[Event], str]] = [
        (settings.topic_status_changed, settings.relay_group, "relay_status_changed", OrderStatusChanged,
         "The relay queues every status event for the endpoints its client registered."),
        # A group of its own: the status events' group, and its committed offsets, stay as they were.
        (settings.topic_command_rejected, f"{settings.relay_group}.rejections", "relay_command_rejected",
         CommandRejected, "The relay queues every rejection for the endpoints subscribed to rejections."),
    ]  # fmt: skip
    by_topic = per_client(settings)
    for topic, group, title, model, description in consumers:
        queuer = EventQueuer(
            model=model, endpoints=endpoints, deliveries=deliveries, clock=clock, on_queued=worker.wake
        )
        # In the `per_client` layout the same groups read every client's topics, found by name.
        subscribe_batches(
            broker,
            settings,
            topic=None if by_topic else topic,
            pattern=client_topic_pattern(topic) if by_topic else None,
            group=group,
            title=title,
            description=description,
            payload=model,
            handler=queuer,
        )
    return Relay(broker, redis, endpoints, deliveries, worker, client)
