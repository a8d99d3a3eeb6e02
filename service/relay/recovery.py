"""Recovering what an endpoint missed: the events of its client published since a time, read again from the
event topics and queued for it once more.

An endpoint that was disabled got nothing queued meanwhile, and one that failed long enough has dead
deliveries (replay brings those back). Kafka still holds every event for the topics' retention, so the
relay need not keep anything for disabled endpoints: recovery reads the client's status topic (and its
rejections topic, for an endpoint subscribed to them) from the time asked for, and queues each event the
endpoint wants through the ordinary enqueue step. That step is idempotent, so nothing is sent twice:

- an order's status event at or below the last sequence delivered (or given up) at the endpoint is not
  queued (`done`), which also keeps each order's events in sequence: an event older than one already
  delivered is not sent after it;
- a rejection delivered or given up is not queued (`settled`, kept at least as long as the topics);
- an event still queued is queued once.

So recovering twice, or over a period partly delivered, sends each missed event once.
"""

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from contracts.events import CommandRejected, OrderStatusChanged
from service.config import Settings
from service.kafka import client_options, client_topics
from service.store.webhook_deliveries import DeliveryStore, QueuedEvent
from service.store.webhook_endpoints import Endpoint, WebhookEventType

CHUNK = 500
"""Events queued per round trip."""


class BeyondHorizon(ValueError):
    """The time asked for is older than what the topics still hold."""


def recovery_horizon(settings: Settings, now: datetime) -> datetime:
    """The oldest time events can be recovered from: the topics keep `ORDERS_TOPIC_RETENTION_MS`."""
    return now - timedelta(milliseconds=settings.topic_retention_ms)


@dataclass(frozen=True)
class Recovered:
    """What a recovery did: events of the client read since the time, and how many of them it queued
    (an event the endpoint had already been delivered is counted as queued but not sent again)."""

    read: int
    queued: int


async def recover_missed(
    settings: Settings,
    deliveries: DeliveryStore,
    endpoint: Endpoint,
    *,
    since: datetime,
    now: datetime,
    on_queued: Callable[[], None] = lambda: None,
) -> Recovered:
    """Queue again, for `endpoint`, every event of its client that occurred at or after `since` and that it
    wants. `BeyondHorizon` if `since` is older than the topics' retention."""
    if since < recovery_horizon(settings, now):
        raise BeyondHorizon(
            f"events can be recovered for the last {settings.topic_retention_ms // 1000} seconds "
            f"(ORDERS_TOPIC_RETENTION_MS), not since {since.isoformat()}"
        )
    topics = client_topics(settings, endpoint.client_id)
    wanted: list[tuple[str, type[OrderStatusChanged] | type[CommandRejected]]] = []
    if WebhookEventType.ORDER_STATUS_CHANGED in endpoint.event_types:
        wanted.append((topics.status_changed, OrderStatusChanged))
    if WebhookEventType.COMMAND_REJECTED in endpoint.event_types:
        wanted.append((topics.command_rejected, CommandRejected))
    read = queued = 0
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id="orders-relay-recovery",
        enable_auto_commit=False,
        **client_options(settings),
    )
    await consumer.start()
    try:
        for topic, model in wanted:
            batch: list[QueuedEvent] = []
            async for event, body in _events_since(consumer, topic, model, since):
                if event.client_id != endpoint.client_id or event.occurred_at < since:
                    continue
                read += 1
                if not endpoint.wants(event):
                    continue
                batch.append(QueuedEvent.of(endpoint.endpoint_id, event, body))
                if len(batch) >= CHUNK:
                    queued += await _enqueue(deliveries, batch, now, on_queued)
            queued += await _enqueue(deliveries, batch, now, on_queued)
    finally:
        await consumer.stop()
    return Recovered(read=read, queued=queued)


async def _enqueue(
    deliveries: DeliveryStore, batch: list[QueuedEvent], now: datetime, on_queued: Callable[[], None]
) -> int:
    count = len(batch)
    if batch:
        await deliveries.enqueue(list(batch), now)
        batch.clear()
        on_queued()
    return count


async def _events_since(
    consumer: AIOKafkaConsumer,
    topic: str,
    model: type[OrderStatusChanged] | type[CommandRejected],
    since: datetime,
) -> AsyncIterator[tuple[OrderStatusChanged | CommandRejected, bytes]]:
    """Each event of `topic` from about `since` to the end the topic had when the reading began, parsed.

    Each partition starts at the first offset whose record timestamp is at or after `since`; where the broker
    cannot say (the embedded Tansu broker answers every such lookup with no timestamp), at its beginning: the
    caller filters by `occurred_at` either way.
    """
    partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
    if not partitions:
        return
    consumer.assign(partitions)
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
    beginnings = await consumer.beginning_offsets(partitions)
    remaining = set()
    for tp in partitions:
        found = starts.get(tp)
        start = found.offset if found is not None and found.timestamp >= 0 else beginnings[tp]
        if start < ends[tp]:
            consumer.seek(tp, start)
            remaining.add(tp)
    consumer.pause(*(tp for tp in partitions if tp not in remaining))
    while remaining:
        fetched = await consumer.getmany(*remaining, timeout_ms=1000)
        for tp, records in fetched.items():
            for record in records:
                if record.offset >= ends[tp]:
                    break
                try:
                    yield model.model_validate_json(record.value or b""), record.value or b""
                except ValidationError:
                    continue  # the relay's consumer logged it as relay.bad_event when it first read it
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
                consumer.pause(tp)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    found = consumer.partitions_for_topic(topic)
    if found is None:
        await consumer._client.force_metadata_update()  # no public refresh in aiokafka
        found = consumer.partitions_for_topic(topic)
    return set(found or ())
