"""What the service published, seen from a test: events, rejections and requests per order."""

from collections.abc import Callable

from contracts.events import CommandRejected, OrderStatusChanged
from contracts.resources import ReleaseRequest, ReserveRequest, resource_request_adapter
from contracts.statuses import OrderStatus
from service.config import Settings
from testkit.kafka_tap import TopicTap


class Observer:
    """Reads one order's messages off the tap, and waits for them."""

    def __init__(self, tap: TopicTap, settings: Settings) -> None:
        self.tap = tap
        self.settings = settings

    def events(self, order_id: str) -> list[OrderStatusChanged]:
        """Status events of the order, deduplicated by event_id, in sequence order."""
        unique = {
            e.event_id: e
            for e in self.tap.decoded(
                self.settings.topic_status_changed, OrderStatusChanged, lambda e: e.order_id == order_id
            )
        }
        return sorted(unique.values(), key=lambda e: e.sequence)

    def rejections(self, order_id: str) -> list[CommandRejected]:
        """Rejections of commands naming the order."""
        return self.tap.decoded(
            self.settings.topic_command_rejected, CommandRejected, lambda r: r.order_id == order_id
        )

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
