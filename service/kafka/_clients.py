"""The Kafka clients every process opens: a FastStream broker, and for the order service's outbox a bare
aiokafka producer; both connect as the settings say (TLS, SASL, idempotence)."""

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from faststream.kafka import KafkaBroker
from murmurhash2 import murmurhash2

from service.config import Settings
from service.kafka._security import broker_security, client_options

JSON_HEADERS = {"content-type": "application/json"}
"""Headers of every message the processes publish, as FastStream's `publish` takes them."""
JSON_RECORD_HEADERS = [(name, value.encode()) for name, value in JSON_HEADERS.items()]
"""The same headers as aiokafka's `send` takes them."""


def build_broker(
    settings: Settings, *, client_id: str, description: str | None = None, middlewares: Sequence[Any] = ()
) -> KafkaBroker:
    """A broker whose handlers receive raw records (see `subscribe_batches`); `description` is the
    server's, in the AsyncAPI document; `middlewares` FastStream's (`service.tracing.kafka_middlewares`)."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        metadata_max_age_ms=settings.kafka_metadata_max_age_ms,
        security=broker_security(settings),
        graceful_timeout=settings.shutdown_grace_seconds,
        apply_types=False,
        # FastStream's lines go through our JSON handler; one per batch at DEBUG, since the processes log
        # their own line per significant event.
        logger=logging.getLogger(f"{client_id}.broker"),
        log_level=logging.DEBUG,
        description=description,
        middlewares=middlewares,
    )


def build_producer(settings: Settings, *, client_id: str) -> AIOKafkaProducer:
    """An aiokafka producer that waits for every in-sync replica, like the brokers' publishers."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=settings.kafka_enable_idempotence,
        partitioner=KeyHashPartitioner(),
        **client_options(settings),
    )


class KeyHashPartitioner:
    """aiokafka's default partitioner (the Java client's murmur2 of the key, so every producer of a key
    picks the same partition), with the hash compiled: aiokafka's pure-Python murmur2 took about 7 µs a key,
    a tenth of the simulator's CPU per order and a few per cent of the service's; `murmurhash2` about
    0.1 µs."""

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return _DEFAULT(key, all_partitions, available)  # type: ignore[no-any-return]
        return all_partitions[key_hash(key) % len(all_partitions)]


_DEFAULT = DefaultPartitioner()
_JAVA_CLIENT_SEED = 0x9747B28C
"""The seed of the Java client's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), aiokafka's too."""


def key_hash(key: bytes) -> int:
    """The positive murmur2 of a key, which every Kafka client takes modulo the partitions."""
    return murmurhash2(key, _JAVA_CLIENT_SEED) & 0x7FFFFFFF


Record = tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]
"""One message to send: its topic, key, value and headers."""


async def send_in_batches(producer: AIOKafkaProducer, records: Iterable[Record]) -> None:
    """Send every record without waiting in between, then wait for every acknowledgement.

    The records are put into record batches per partition here and each batch is handed over whole
    (`send_batch`): `send` per message cost a future and a metadata check each, about a tenth of the order
    service's CPU. Records keep their order within each partition, which is all Kafka orders.
    """
    open_batches: dict[tuple[str, int], BatchBuilder] = {}
    pending: list[asyncio.Future[object]] = []
    layouts: dict[str, list[int]] = {}
    for topic, key, value, headers in records:
        layout = layouts.get(topic)
        if layout is None:  # the topic's partitions, read once per call rather than per message
            layout = layouts[topic] = sorted(await producer.partitions_for(topic))
        # The partition `send` would pick, with the producer's own partitioner: an order's messages land
        # where every other producer of the order's key puts them. (A keyed message's partition depends on
        # the key and the topic's partitions only; a keyless one's on which are available.)
        partition: int = (
            producer._partitioner(key, layout, layout)
            if key is not None
            else producer._partition(topic, None, key, None, key, None)
        )
        batch = open_batches.get((topic, partition))
        if (
            batch is not None
            and batch.append(key=key, value=value, timestamp=None, headers=headers) is not None
        ):
            continue
        if batch is not None:  # full: send it, and start the partition's next one
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        batch = open_batches[(topic, partition)] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
            raise ValueError(f"a {len(value)}-byte message does not fit in a record batch")
    for (topic, partition), batch in open_batches.items():
        pending.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*pending)
