"""Prebookings driven through the real broker and Redis, from command to final status."""

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.events import OrderStatusChanged
from contracts.resources import ReleaseRequest, ReserveRequest, resource_request_adapter
from contracts.statuses import (
    DeliveryStatus,
    OneOrderStatus,
    OrderItemStatus,
    OrderStatus,
    OrderType,
    ServiceStatus,
)
from service.app import OrderService
from service.config import Settings
from service.domain.order import ReservationState
from service.resource_sim import booking_reference
from service.store.keys import outbox_key
from testkit.api_keys import issue_key
from testkit.factories import prebooking
from testkit.kafka_tap import TopicTap, produce
from tests.integration.conftest import BOTH_LAYOUTS, FULL_RESOURCE
from tests.integration.observe import Observer, commands_topic

pytestmark = [pytest.mark.usefixtures("simulator"), BOTH_LAYOUTS]


def status_events(tap: TopicTap, settings: Settings, order_id: str) -> list[OrderStatusChanged]:
    """The order's events as a subscriber sees them: delivery is at least once (a producer retry after a
    lost acknowledgement sends a record twice), so they are deduplicated by event_id, in sequence order."""
    return Observer(tap, settings).events(order_id)


async def final_events(
    tap: TopicTap, settings: Settings, order_id: str, count: int
) -> list[OrderStatusChanged]:
    def enough() -> list[OrderStatusChanged] | None:
        events = status_events(tap, settings, order_id)
        return events if len(events) >= count else None

    return await tap.wait_for(enough)


async def test_prebooking_is_confirmed_when_every_item_is(
    service: OrderService, settings: Settings, tap: TopicTap, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """Pending (5) then Confirmed (1), with one reserve per item and the ONE Order view following along."""
    command = prebooking("RES-OK", "RES-OK-2", passengers=2)
    await produce(producer, commands_topic(settings, command.client_id), command, command.order_id)

    pending, confirmed = await final_events(tap, settings, command.order_id, 2)

    assert (pending.sequence, pending.status, pending.previous_status) == (1, OrderStatus.PENDING, None)
    assert pending.order_type is OrderType.PREBOOKING
    assert {s.delivery_status for i in pending.order.items for s in i.services} == {DeliveryStatus.REQUESTED}
    assert (confirmed.sequence, confirmed.status, confirmed.previous_status) == (2, OrderStatus.CONFIRMED, 5)
    assert confirmed.status_name == "Confirmed"
    assert confirmed.order.status is OneOrderStatus.OPENED
    assert [i.status for i in confirmed.order.items] == [OrderItemStatus.ACTIVE] * 2
    services = [s for i in confirmed.order.items for s in i.services]
    assert len(services) == 4
    assert {(s.status, s.delivery_status) for s in services} == {
        (ServiceStatus.CONFIRMED, DeliveryStatus.READY_TO_DELIVER)
    }
    assert pending.event_id != confirmed.event_id

    requests = [
        resource_request_adapter.validate_json(r.value)
        for r in tap.records[settings.topic_resource_requests]
        if r.key == command.order_id.encode()
    ]
    assert sorted(r.reservation_id for r in requests if isinstance(r, ReserveRequest)) == [
        f"{command.client_id}/{command.order_id}/ITEM-1",
        f"{command.client_id}/{command.order_id}/ITEM-2",
    ]
    stored = await service.store.get(command.client_id, command.order_id)
    assert stored is not None
    assert stored.status is OrderStatus.CONFIRMED and stored.sequence == 2
    assert {i.reservation for i in stored.items} == {ReservationState.CONFIRMED}
    assert await redis.hlen(outbox_key(command.client_id, command.order_id)) == 0, (
        "published entries leave the outbox"
    )


async def test_prebooking_fails_when_any_item_fails(
    service: OrderService, settings: Settings, tap: TopicTap, producer: AIOKafkaProducer
) -> None:
    """One refused item fails the order (10) with the resource's reason; held capacity is released."""
    command = prebooking("RES-OK", FULL_RESOURCE)
    await produce(producer, commands_topic(settings, command.client_id), command, command.order_id)

    pending, failed = await final_events(tap, settings, command.order_id, 2)

    assert pending.status is OrderStatus.PENDING
    assert (failed.sequence, failed.status, failed.previous_status) == (2, OrderStatus.FAILED, 5)
    assert failed.reason == "SOLD_OUT"
    assert failed.order.status is OneOrderStatus.CLOSED
    # All items were withdrawn in the same transaction, so the view keeps them (the ONE Order retrieve rule).
    assert [i.status for i in failed.order.items] == [OrderItemStatus.CANCELLED] * 2
    # The refused item says so (UNABLE_TO_DELIVER); the sibling withdrawn because of it was REMOVED.
    assert {i.order_item_id: {s.delivery_status for s in i.services} for i in failed.order.items} == {
        "ITEM-1": {DeliveryStatus.REMOVED},
        "ITEM-2": {DeliveryStatus.UNABLE_TO_DELIVER},
    }

    # Whether RES-OK confirmed before or after the failure, its capacity is given back exactly once.
    def releases() -> list[ReleaseRequest]:
        return [
            r
            for r in (
                resource_request_adapter.validate_json(rec.value)
                for rec in tap.records[settings.topic_resource_requests]
            )
            if isinstance(r, ReleaseRequest) and r.order_id == command.order_id
        ]

    released = await tap.wait_for(releases)
    assert [r.reservation_id for r in released] == [f"{command.client_id}/{command.order_id}/ITEM-1"]
    assert released[0].reason in ("ORDER_FAILED", "LATE_CONFIRMATION")
    stored = await service.store.get(command.client_id, command.order_id)
    assert stored is not None and stored.status is OrderStatus.FAILED


async def test_the_resources_booking_references_reach_the_event_and_the_api(
    service: OrderService,
    settings: Settings,
    tap: TopicTap,
    producer: AIOKafkaProducer,
    redis: Redis,
    api: httpx.AsyncClient,
) -> None:
    """Each `confirmed` reply's booking_reference is kept with its item: the Confirmed event's view shows
    both items' references (the first arrived before any event), and GET /v1/orders/{id} shows them too."""
    command = prebooking("RES-OK", "RES-OK-2")
    await produce(producer, commands_topic(settings, command.client_id), command, command.order_id)
    expected = {
        f"ITEM-{n}": booking_reference(f"{command.client_id}/{command.order_id}/ITEM-{n}/reserve")
        for n in (1, 2)
    }  # what the simulator, standing in for the operators, sends

    _, confirmed = await final_events(tap, settings, command.order_id, 2)

    assert {i.order_item_id: i.booking_reference for i in confirmed.order.items} == expected
    issued = await issue_key(redis, command.client_id)
    response = await api.get(
        f"/v1/orders/{command.order_id}", headers={"Authorization": f"Bearer {issued.token}"}
    )
    items = response.json()["order"]["items"]
    assert {i["order_item_id"]: i["booking_reference"] for i in items} == expected
