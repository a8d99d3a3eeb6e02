"""Create the service's topics when they are missing; existing topics are used as they are."""

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


async def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    partitions: int,
    replication: int,
    client_options: Mapping[str, Any] | None = None,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create every topic in `names` that does not exist yet, with its `configs` (e.g. `retention.ms`) if
    given (`client_options`: TLS and SASL, see `service.kafka_security`). Existing topics are left as they
    are: their settings belong to whoever runs the cluster."""
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
