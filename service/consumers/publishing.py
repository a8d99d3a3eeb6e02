"""Publishing decided messages: to an aiokafka producer, batched; FastStream documents the channels."""

from collections.abc import Sequence

import jiter
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from contracts.events import CommandRejected, DeadLetter, OrderStatusChanged
from contracts.resources import ResourceRequestMessage
from service import tracing
from service.config import Settings
from service.kafka import (
    JSON_RECORD_HEADERS,
    Record,
    build_producer,
    client_topics,
    per_client,
    send_in_batches,
)
from service.store.outbox import Destination, OutboxEntry


class OutboxPublisher:
    """Sends a batch of messages at once and returns when the broker acknowledged all of them.

    The messages are bytes already (stored in the outbox as such), so they go to the aiokafka producer
    directly: FastStream's publish path (codec, middlewares, correlation headers) cost about a tenth of the
    service's CPU per message. The FastStream publishers are still declared, for the AsyncAPI document.
    """

    def __init__(self, broker: KafkaBroker, settings: Settings) -> None:
        self._settings = settings
        self._topics = {
            Destination.STATUS_CHANGED: settings.topic_status_changed,
            Destination.RESOURCE_REQUESTS: settings.topic_resource_requests,
            Destination.COMMAND_REJECTED: settings.topic_command_rejected,
            Destination.DEAD_LETTER: settings.topic_dead_letter,
        }
        documented = [
            (Destination.STATUS_CHANGED, "order_status_changed", OrderStatusChanged,
             "Every status change of every order; keyed by order_id, ordered by `sequence`."),
            (Destination.RESOURCE_REQUESTS, "resource_requests", ResourceRequestMessage,
             "`reserve` and `release` requests to resource operators; keyed by order_id."),
            (Destination.COMMAND_REJECTED, "command_rejected", CommandRejected,
             "Commands that were not carried out, with a stable code (and field errors for invalid ones)."),
            (Destination.DEAD_LETTER, "dead_letter", DeadLetter,
             "Input that could not be parsed or validated, with the reason and the bytes."),
        ]  # fmt: skip
        for destination, title, schema, description in documented:
            broker.publisher(self._topics[destination], title=title, description=description, schema=schema)
        self._producer: AIOKafkaProducer | None = None
        self._per_client = per_client(settings)

    async def start(self) -> None:
        """Connect the producer (before the consumers start: their first batch may publish)."""
        self._producer = build_producer(self._settings, client_id="orders-service")
        await self._producer.start()

    async def stop(self) -> None:
        """Flush and disconnect (after the consumers drained)."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish(self, entries: Sequence[OutboxEntry]) -> None:
        """Send all entries without waiting in between, then wait for every acknowledgement (in record
        batches per partition: `service.kafka.send_in_batches`)."""
        if not entries:
            return
        producer = self._producer
        if producer is None:
            raise RuntimeError("the outbox publisher is not started")
        await send_in_batches(producer, (self._record(entry) for entry in entries))

    def _record(self, entry: OutboxEntry) -> Record:
        topic = self._topic_of(entry)
        # With tracing on, a PRODUCER span continuing the trace stored with the entry.
        headers = tracing.record_headers(JSON_RECORD_HEADERS, entry.traceparent, topic)
        return topic, entry.key.encode() or None, entry.value, headers

    def _topic_of(self, entry: OutboxEntry) -> str:
        """The entry's topic: in the `per_client` layout, status events and rejections go to the topics of
        the client they name, so that a client reading its own topics sees only its own orders."""
        destination = entry.destination
        if not self._per_client or destination not in _PER_CLIENT:
            return self._topics[destination]
        # Every entry of these destinations names its client (`OutboxEntry.client_id`); parsing the message
        # is only the fallback for one built without it.
        client_id = entry.client_id or jiter.from_json(entry.value)["client_id"]
        topics = client_topics(self._settings, client_id)
        return topics.status_changed if destination is Destination.STATUS_CHANGED else topics.command_rejected


_PER_CLIENT = frozenset({Destination.STATUS_CHANGED, Destination.COMMAND_REJECTED})
