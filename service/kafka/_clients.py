"""The Kafka clients every process opens: a FastStream broker, and for the order service's outbox a bare
aiokafka producer; both connect as the settings say (TLS, SASL, idempotence)."""

import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

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
        **client_options(settings),
    )
