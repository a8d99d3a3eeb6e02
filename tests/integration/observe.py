"""What the service published, seen from a test: events, rejections and requests per order."""

from collections.abc import Callable

from contracts.events import CommandRejected, OrderStatusChanged
from contracts.resources import ReleaseRequest, ReserveRequest, resource_request_adapter
from contracts.statuses import OrderStatus
from service.config import Settings
from service.kafka import client_topics
from testkit.kafka_tap import TopicTap

FLOW_CLIENTS = ("client-a",)
"""The clients the flow modules send as: in the `per_client` layout, these have topics of their own."""


def event_topics(settings: Settings) -> tuple[list[str], list[str]]:
    """The status and the rejection topics the flow clients' messages go to, in either layout."""
    topics = [client_topics(settings, client) for client in FLOW_CLIENTS]
    return sorted({t.status_changed for t in topics}), sorted({t.command_rejected for t in topics})


def commands_topic(settings: Settings, client_id: str) -> str:
    """Where `client_id` writes its commands, in either layout."""
    return client_topics(settings, client_id).commands


class Observer:
    """Reads one order's messages off the tap, and waits for them."""

    def __init__(self, tap: TopicTap, settings: Settings) -> None:
        self.tap = tap
        self.settings = settings
        self._status_topics, self._rejection_topics = event_topics(settings)

    def events(self, order_id: str) -> list[OrderStatusChanged]:
        """Status events of the order, deduplicated by event_id, in sequence order."""
        unique = {
            e.event_id: e
            for topic in self._status_topics
            for e in self.tap.decoded(topic, OrderStatusChanged, lambda e: e.order_id == order_id)
        }
        return sorted(unique.values(), key=lambda e: e.sequence)

    async def settled_events(self, order_id: str) -> list[OrderStatusChanged]:
        """The order's events once the tap has read everything published so far: for asserting that no
        further event came (a sentinel's answer on another topic can be read before them)."""
        await self.tap.caught_up()
        return self.events(order_id)

    def rejections(self, order_id: str) -> list[CommandRejected]:
        """Rejections of commands naming the order."""
        return [
            r
            for topic in self._rejection_topics
            for r in self.tap.decoded(topic, CommandRejected, lambda r: r.order_id == order_id)
        ]

    def requests(self, order_id: str) -> list[ReserveRequest | ReleaseRequest]:
        """Requests the service sent to resources about the order."""
        return [
            request
            for request in (
                resource_request_adapter.validate_json(r.value)
                for r in self.tap.records[self.settings.topic_resource_requests]
            )
            if request.order_id == order_id
        ]

    def releases(self, order_id: str) -> list[ReleaseRequest]:
        """Release requests about the order."""
        return [r for r in self.requests(order_id) if isinstance(r, ReleaseRequest)]

    async def status(
        self, order_id: str, status: OrderStatus, sequence: int | None = None
    ) -> list[OrderStatusChanged]:
        """Wait for an event moving the order to `status` (at `sequence`, if given); return all its events."""

        def reached() -> list[OrderStatusChanged] | None:
            events = self.events(order_id)
            hit = any(e.status is status and (sequence is None or e.sequence == sequence) for e in events)
            return events if hit else None

        return await self.tap.wait_for(reached)

    async def rejection(self, order_id: str, command_id: str) -> CommandRejected:
        """Wait for the rejection of one command."""
        [rejected] = await self.tap.wait_for(
            lambda: [r for r in self.rejections(order_id) if r.command_id == command_id]
        )
        return rejected

    async def until(self, probe: Callable[[], object]) -> None:
        """Wait until `probe()` is truthy, re-checked as messages arrive."""
        await self.tap.wait_for(probe)
