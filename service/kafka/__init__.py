"""What every process shares about Kafka: clients, batch subscribers, headers, security, topics and
the app that runs a broker between a process's start and stop steps.

Imports only `contracts`, `service.config` and third-party libraries, so that the order service, the relay,
the API and the simulator all depend on it and it on none of them.
"""

from service.kafka._apps import BackgroundLoop, ConsumingProcess, build_app
from service.kafka._clients import (
    JSON_HEADERS,
    JSON_RECORD_HEADERS,
    Record,
    build_broker,
    build_producer,
    send_in_batches,
)
from service.kafka._security import broker_security, client_options
from service.kafka._subscribers import BATCH_POLL_MS, RecordsHandler, subscribe_batches
from service.kafka._topics import (
    ClientTopics,
    client_of_topic,
    client_topic_pattern,
    client_topics,
    ensure_client_topics,
    ensure_service_topics,
    ensure_topics,
    per_client,
    service_topics,
    topic_configs,
)

__all__ = [
    "BATCH_POLL_MS",
    "JSON_HEADERS",
    "JSON_RECORD_HEADERS",
    "BackgroundLoop",
    "ClientTopics",
    "ConsumingProcess",
    "Record",
    "RecordsHandler",
    "broker_security",
    "build_app",
    "build_broker",
    "build_producer",
    "client_of_topic",
    "client_options",
    "client_topic_pattern",
    "client_topics",
    "ensure_client_topics",
    "ensure_service_topics",
    "ensure_topics",
    "per_client",
    "send_in_batches",
    "service_topics",
    "subscribe_batches",
    "topic_configs",
]
