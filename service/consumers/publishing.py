"""Publishing decided messages through FastStream publishers, which also document them in AsyncAPI."""

import asyncio
from collections.abc import Sequence

from faststream.kafka import KafkaBroker
from faststream.kafka.publisher.usecase import DefaultPublisher

from contracts.events import CommandRejected, DeadLetter, OrderStatusChanged
from contracts.resources import ResourceRequestMessage
from service.config import Settings
from service.store.outbox import Destination, OutboxEntry

JSON_HEADERS = {"content-type": "application/json"}


class OutboxPublisher:
    """Sends a batch of messages at once and returns when the broker acknowledged all of them."""

    def __init__(self, broker: KafkaBroker, settings: Settings) -> None:
        self._publishers: dict[Destination, DefaultPublisher] = {
            Destination.STATUS_CHANGED: broker.publisher(
                settings.topic_status_changed,
                title="order_status_changed",
                description="Every status change of every order; keyed by order_id, ordered by `sequence`.",
                schema=OrderStatusChanged,
            ),
            Destination.RESOURCE_REQUESTS: broker.publisher(
                settings.topic_resource_requests,
                title="resource_requests",
                description="`reserve` and `release` requests to resource operators; keyed by order_id.",
                schema=ResourceRequestMessage,
            ),
            Destination.COMMAND_REJECTED: broker.publisher(
                settings.topic_command_rejected,
                title="command_rejected",
                description="Valid commands that were not carried out, with a stable code.",
                schema=CommandRejected,
            ),
            Destination.DEAD_LETTER: broker.publisher(
                settings.topic_dead_letter,
                title="dead_letter",
                description="Input that could not be parsed or validated, with the reason and the bytes.",
                schema=DeadLetter,
            ),
        }

    async def publish(self, entries: Sequence[OutboxEntry]) -> None:
        """Send all entries without waiting in between, then wait for every acknowledgement."""
        pending = [
            await self._publishers[entry.destination].publish(
                entry.value, key=entry.key.encode() or None, headers=JSON_HEADERS, no_confirm=True
            )
            for entry in entries
        ]
        await asyncio.gather(*pending)
