"""What the operator's and the catalog's pages read: dead letters from Kafka, consumer lag, the metrics the
processes expose, and the event schemas of the contract."""

import asyncio
import base64
import binascii
import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

import contracts
from contracts.events import DeadLetter
from service.config import ApiSettings
from service.kafka._security import client_options

SCHEMAS = Path(contracts.__file__).with_name("schemas")
CATALOG = {
    "order_status_changed": "orders.status-changed.json",
    "command_rejected": "orders.command-rejected.json",
    "endpoint_state_changed": "webhooks.endpoint_state_changed.json",
}
"""The webhook event types and the contract schema of each (`contracts/schemas`)."""

KAFKA_SECONDS = 5.0
"""The most a page waits for Kafka; it shows what it has (or that Kafka did not answer) after that."""


@dataclass(frozen=True)
class CatalogEntry:
    event_type: str
    description: str
    schema: str
    example: str


def catalog() -> list[CatalogEntry]:
    """Each webhook event type with its schema and an example built from the schema's own examples."""
    entries = []
    for event_type, name in CATALOG.items():
        schema = json.loads((SCHEMAS / name).read_text())
        example = _example(schema, schema.get("$defs", {}))
        entries.append(
            CatalogEntry(
                event_type,
                schema.get("description", ""),
                json.dumps(schema, indent=2),
                json.dumps(example, indent=2),
            )
        )
    return entries


def _example(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    if "$ref" in schema:
        return _example(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "examples" in schema:
        return schema["examples"][0]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        concrete = [s for s in schema["anyOf"] if s.get("type") != "null"] or schema["anyOf"]
        return _example(concrete[0], defs)
    kind = schema.get("type")
    if kind == "object":
        return {name: _example(sub, defs) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [_example(schema.get("items", {}), defs)]
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "boolean":
        return False
    if schema.get("format") == "date-time":
        return "2026-11-23T16:50:00Z"
    if schema.get("format") == "date":
        return "2026-12-24"
    return "…" if kind == "string" else None


@dataclass(frozen=True)
class DecodedDeadLetter:
    """A dead letter as the operator reads it: its reason, where the input was, and the input decoded."""

    partition: int
    offset: int
    letter: DeadLetter | None
    key: str
    value: str
    raw: str


def _text(encoded: str | None) -> str:
    if encoded is None:
        return ""
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8", "replace")[:4000]
    except (binascii.Error, ValueError):
        return encoded[:4000]


async def recent_dead_letters(settings: ApiSettings, count: int = 50) -> list[DecodedDeadLetter]:
    """The newest dead letters of every partition of the dead-letter topic, newest first; read without a
    consumer group, so the page commits nothing."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=5,
        **client_options(settings),
    )
    await consumer.start()
    try:
        async with asyncio.timeout(KAFKA_SECONDS):
            return await _read_tail(consumer, settings.topic_dead_letter, count)
    finally:
        await consumer.stop()


async def _read_tail(consumer: AIOKafkaConsumer, topic: str, count: int) -> list[DecodedDeadLetter]:
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    if not partitions:
        await consumer._client.force_metadata_update()  # no public refresh in aiokafka
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    if not partitions:
        return []
    consumer.assign(partitions)
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions)
    wanted = {}
    for tp in partitions:
        first = max(starts[tp], ends[tp] - count)
        if first < ends[tp]:
            consumer.seek(tp, first)
            wanted[tp] = ends[tp]
    found: list[DecodedDeadLetter] = []
    while wanted:
        for tp, records in (await consumer.getmany(*wanted, timeout_ms=200)).items():
            for record in records:
                found.append(_decode(record.partition, record.offset, record.value or b""))
            if records and records[-1].offset + 1 >= wanted[tp]:
                del wanted[tp]
    found.sort(key=lambda d: d.letter.occurred_at.timestamp() if d.letter else 0, reverse=True)
    return found[:count]


def _decode(partition: int, offset: int, value: bytes) -> DecodedDeadLetter:
    raw = value.decode("utf-8", "replace")[:4000]
    try:
        letter = DeadLetter.model_validate_json(value)
    except ValidationError:
        return DecodedDeadLetter(partition, offset, None, "", "", raw)
    return DecodedDeadLetter(partition, offset, letter, _text(letter.key), _text(letter.value), raw)


async def consumer_lag(settings: ApiSettings) -> dict[str, int]:
    """Records the service's consumer groups have yet to read: end offsets minus committed ones, read from
    Kafka itself, over every partition of the topics each group reads (in the `per_client` layout, every
    client's commands topic). A group's committed offsets are read without joining it (no rebalance)."""
    readers = {
        f"{settings.consumer_group}.commands": settings.topic_commands,
        f"{settings.consumer_group}.replies": settings.topic_resource_replies,
    }
    lag = {}
    async with asyncio.timeout(KAFKA_SECONDS):
        for group, base in readers.items():
            consumer = AIOKafkaConsumer(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                group_id=group,
                enable_auto_commit=False,
                **client_options(settings),
            )
            await consumer.start()
            try:
                topics = [t for t in await consumer.topics() if t == base or t.startswith(f"{base}.")]
                partitions = [
                    TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or []
                ]
                ends = await consumer.end_offsets(partitions) if partitions else {}
                starts = await consumer.beginning_offsets(partitions) if partitions else {}
                behind = 0
                for tp in partitions:
                    committed = await consumer.committed(tp)  # None: the group has not read it yet
                    behind += max(0, ends[tp] - (starts[tp] if committed is None else committed))
                lag[group] = behind
            finally:
                await consumer.stop()
    return lag


RATES = {
    "orders_inputs_applied_total": "inputs applied per second",
    "orders_messages_published_total": "messages published per second",
    "orders_webhook_deliveries_total": "webhook deliveries per second",
    "orders_webhook_attempts_total": "webhook attempts per second",
}
"""The counters drawn as rates (per second between two readings of the page)."""


@dataclass
class Reading:
    at: float
    totals: dict[str, float]
    latency_buckets: dict[str, float]
    sources: dict[str, str]


@dataclass
class MetricsSampler:
    """Reads the processes' metrics each time the page is opened and keeps the last readings in memory (this
    API process only), so that rates can be drawn between them."""

    urls: list[str]
    readings: deque[Reading] = field(default_factory=lambda: deque(maxlen=60))

    async def read(self) -> Reading:
        texts = {"orders api": generate_latest().decode()}
        sources = {"orders api": "ok"}
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for url in self.urls:
                try:
                    async with session.get(url) as response:
                        texts[url] = await response.text()
                        sources[url] = f"HTTP {response.status}"
                except (aiohttp.ClientError, TimeoutError, OSError) as error:
                    sources[url] = type(error).__name__
        totals: dict[str, float] = {}
        buckets: dict[str, float] = {}
        for text in texts.values():
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name in RATES:
                        totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
                    if sample.name == "orders_webhook_attempt_seconds_bucket":
                        le = sample.labels.get("le", "")
                        buckets[le] = buckets.get(le, 0.0) + sample.value
        reading = Reading(time.time(), totals, buckets, sources)
        self.readings.append(reading)
        return reading

    def rates(self) -> dict[str, list[tuple[str, float]]]:
        """Per counter, its rate between each two consecutive readings, labelled by the later one's time."""
        series: dict[str, list[tuple[str, float]]] = {name: [] for name in RATES}
        pairs = list(zip(list(self.readings)[:-1], list(self.readings)[1:], strict=True))
        for before, after in pairs:
            seconds = max(after.at - before.at, 1e-3)
            label = time.strftime("%H:%M:%S", time.gmtime(after.at))
            for name in RATES:
                delta = after.totals.get(name, 0.0) - before.totals.get(name, 0.0)
                series[name].append((label, max(0.0, delta) / seconds))
        return series
