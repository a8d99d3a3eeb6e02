"""The topics' names in each layout, in one place, and creating them when they are missing (existing topics
are used as they are)."""

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from contracts.base import CLIENT_ID_PATTERN
from service.config import Settings, TopicLayout
from service.kafka._security import client_options as security_options

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


@dataclass(frozen=True, slots=True)
class ClientTopics:
    """The topics one client writes commands to and reads its events from."""

    commands: str
    status_changed: str
    command_rejected: str

    def all(self) -> list[str]:
        """The three names."""
        return [self.commands, self.status_changed, self.command_rejected]


def per_client(settings: Settings) -> bool:
    """Whether each client has its own commands, status and rejections topics."""
    return settings.topic_layout is TopicLayout.PER_CLIENT


def client_topics(settings: Settings, client_id: str) -> ClientTopics:
    """The topics of `client_id`: its own (`<topic>.<client_id>`) in the `per_client` layout, the shared
    ones otherwise."""
    if not per_client(settings):
        return ClientTopics(
            settings.topic_commands, settings.topic_status_changed, settings.topic_command_rejected
        )
    return ClientTopics(
        f"{settings.topic_commands}.{client_id}",
        f"{settings.topic_status_changed}.{client_id}",
        f"{settings.topic_command_rejected}.{client_id}",
    )


def client_topic_pattern(base: str) -> str:
    """The regular expression of every client's topic named after `base` (e.g. `orders.commands`); the
    client id is its group `client`. A client id holds no `.`, so that no other topic matches."""
    return rf"^{re.escape(base)}\.(?P<client>{CLIENT_ID_PATTERN.removeprefix('^').removesuffix('$')})$"


def client_of_topic(base: str, topic: str) -> str | None:
    """The client whose topic named after `base` `topic` is, or None when it is no client's."""
    found = re.match(client_topic_pattern(base), topic)
    return found["client"] if found else None


def service_topics(settings: Settings) -> list[str]:
    """Every topic the service reads or writes; in the `per_client` layout without the clients' own topics,
    which `orders client create` creates."""
    shared = [settings.topic_resource_requests, settings.topic_resource_replies, settings.topic_dead_letter]
    if per_client(settings):
        return shared
    return [
        settings.topic_commands,
        *shared[:2],
        settings.topic_status_changed,
        settings.topic_command_rejected,
        shared[2],
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


async def ensure_client_topics(settings: Settings, client_id: str) -> list[str]:
    """Create the missing topics of `client_id` in the `per_client` layout (none in the shared one), as
    the service's own are created; returns their names."""
    if not per_client(settings):
        return []
    names = client_topics(settings, client_id).all()
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        names,
        settings.topic_partitions,
        settings.topic_replication_factor,
        security_options(settings),
        {name: {"retention.ms": str(settings.topic_retention_ms)} for name in names},
    )
    return names


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
