"""Create the service's topics when they are missing; existing topics are used as they are."""

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from service.config import Settings
from service.kafka._security import client_options as security_options

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


def service_topics(settings: Settings) -> list[str]:
    """Every topic the service reads or writes."""
    return [
        settings.topic_commands,
        settings.topic_resource_requests,
        settings.topic_resource_replies,
        settings.topic_status_changed,
        settings.topic_command_rejected,
        settings.topic_dead_letter,
    ]


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic configuration the service creates its topics with: retention per topic."""
    configs = {
        topic: {"retention.ms": str(settings.topic_retention_ms)} for topic in service_topics(settings)
    }
    configs[settings.topic_dead_letter] = {"retention.ms": str(settings.topic_dead_letter_retention_ms)}
    return configs


async def ensure_service_topics(settings: Settings) -> None:
    """Create the service's missing topics as `settings` configure them."""
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        service_topics(settings),
        settings.topic_partitions,
        settings.topic_replication_factor,
        security_options(settings),
        topic_configs(settings),
    )


async def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    partitions: int,
    replication: int,
    client_options: Mapping[str, Any] | None = None,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create every topic in `names` that does not exist yet, with its `configs` (e.g. `retention.ms`) if
    given (`client_options`: TLS and SASL, see `service.kafka.client_options`). Existing topics are left as
    they are: their settings belong to whoever runs the cluster."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(client_options or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in dict.fromkeys(names) if name not in existing]
        if not missing:
            return
        response = await admin.create_topics(
            [
                NewTopic(name, partitions, replication, topic_configs=dict((configs or {}).get(name, {})))
                for name in missing
            ]
        )
        for topic, code, message in _topic_errors(response):
            if code not in (0, _TOPIC_ALREADY_EXISTS):  # another instance may have just created it
                raise RuntimeError(f"cannot create topic {topic}: {code} {message}")
        log.info("topics.created", extra={"topics": missing, "partitions": partitions})
    finally:
        await admin.close()


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    return [(error[0], error[1], error[2] if len(error) > 2 else None) for error in response.topic_errors]  # type: ignore[attr-defined]
