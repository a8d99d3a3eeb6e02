"""Suspension for a fraud review through the real broker, Redis and HTTP API: suspend then revert, suspend
then remove; redemption and refunds refused meanwhile."""

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.commands import CancelOrder, LiftSuspension, RedeemOrder, SuspendServices
from contracts.statuses import OneOrderStatus, OrderStatus, RejectionCode
from service.app import OrderService
from service.config import Settings
from testkit.api_keys import issue_key
from testkit.factories import prebooking, unique, walk_in
from testkit.kafka_tap import TopicTap, produce
from tests.integration.conftest import BOTH_LAYOUTS
from tests.integration.observe import Observer, commands_topic

pytestmark = [pytest.mark.usefixtures("simulator"), BOTH_LAYOUTS]


@pytest.fixture
def bus(tap: TopicTap, settings: Settings) -> Observer:
    return Observer(tap, settings)


async def send(producer: AIOKafkaProducer, settings: Settings, command: object) -> None:
    topic = commands_topic(settings, command.client_id)  # type: ignore[attr-defined]
    await produce(producer, topic, command, command.order_id)  # type: ignore[arg-type, attr-defined]


async def test_suspend_over_the_api_refuse_redemption_then_revert_and_redeem(
    service: OrderService,
    settings: Settings,
    producer: AIOKafkaProducer,
    bus: Observer,
    api: httpx.AsyncClient,
    redis: Redis,
) -> None:
    """POST …/suspend: SUSPENDED, status still 1; a redemption is SERVICES_SUSPENDED; POST
    …/lift-suspension REVERT: READY_TO_DELIVER again, and the redemption then uses the order."""
    issued = await issue_key(redis, "client-a")
    headers = {"Authorization": f"Bearer {issued.token}"}
    command = prebooking(passengers=1)
    await send(producer, settings, command)
    await bus.status(command.order_id, OrderStatus.CONFIRMED)

    response = await api.post(
        f"/v1/orders/{command.order_id}/suspend", json={"reason": "fraud review 118"}, headers=headers
    )
    assert response.status_code == 202
    events = await bus.status(command.order_id, OrderStatus.CONFIRMED, sequence=3)
    assert (events[-1].reason, events[-1].order.items[0].services[0].delivery_status) == (
        "fraud review 118",
        "SUSPENDED",
    )
    refused = RedeemOrder(command_id=unique("cmd"), client_id="client-a", order_id=command.order_id)
    await send(producer, settings, refused)
    assert (
        await bus.rejection(command.order_id, refused.command_id)
    ).code is RejectionCode.SERVICES_SUSPENDED

    response = await api.post(
        f"/v1/orders/{command.order_id}/lift-suspension", json={"resolution": "REVERT"}, headers=headers
    )
    assert response.status_code == 202
    reverted = await bus.status(command.order_id, OrderStatus.CONFIRMED, sequence=4)
    assert reverted[-1].reason == "SUSPENSION_REVERTED"
    assert reverted[-1].order.items[0].services[0].delivery_status == "READY_TO_DELIVER"
    await send(producer, settings, refused.model_copy(update={"command_id": unique("cmd")}))
    used = await bus.status(command.order_id, OrderStatus.USED)
    assert [e.sequence for e in used] == [1, 2, 3, 4, 5]


async def test_suspended_walk_in_is_removed_without_refund_exactly_once(
    service: OrderService, settings: Settings, producer: AIOKafkaProducer, bus: Observer
) -> None:
    """A usage under review: the staff's cancellation (refund) is refused; REMOVE (sent twice) keeps it Used
    with REMOVED services and CLOSED view, one event, and the units stay consumed."""
    credential = unique("CARD")
    await service.entitlements.grant("client-a", credential, 2)
    usage = walk_in(credential=credential)
    await send(producer, settings, usage)
    await bus.status(usage.order_id, OrderStatus.USED)
    suspend = SuspendServices(
        command_id=unique("cmd"), client_id="client-a", order_id=usage.order_id, initiated_by="RESOURCE_STAFF"
    )
    await send(producer, settings, suspend)
    await bus.status(usage.order_id, OrderStatus.USED, sequence=2)
    refund = CancelOrder(
        command_id=unique("cmd"), client_id="client-a", order_id=usage.order_id, initiated_by="RESOURCE_STAFF"
    )
    await send(producer, settings, refund)
    assert (await bus.rejection(usage.order_id, refund.command_id)).code is RejectionCode.SERVICES_SUSPENDED

    remove = LiftSuspension(
        command_id=unique("cmd"), client_id="client-a", order_id=usage.order_id, resolution="REMOVE"
    )
    for command in (remove, remove):
        await send(producer, settings, command)
    await bus.status(usage.order_id, OrderStatus.USED, sequence=3)
    sentinel = remove.model_copy(update={"command_id": unique("cmd")})
    await send(producer, settings, sentinel)
    assert (await bus.rejection(usage.order_id, sentinel.command_id)).code is RejectionCode.INVALID_STATE

    events = await bus.settled_events(usage.order_id)
    assert [(e.sequence, e.status, e.reason) for e in events] == [
        (1, 2, None),
        (2, 2, "SUSPENDED_BY_RESOURCE_STAFF"),
        (3, 2, "SUSPENDED_SERVICES_REMOVED"),
    ]
    assert events[-1].order.status is OneOrderStatus.CLOSED
    assert {s.delivery_status for i in events[-1].order.items for s in i.services} == {"REMOVED"}
    assert await service.entitlements.balance("client-a", credential) == 1
