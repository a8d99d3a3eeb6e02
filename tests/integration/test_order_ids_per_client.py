"""Order ids are scoped per client: two clients' orders under one id live apart (real broker and Redis)."""

import statistics
import time

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.commands import CreatePrebooking
from contracts.events import OrderStatusChanged
from contracts.statuses import OrderStatus
from service.app import OrderService
from service.config import Settings
from testkit.api_keys import issue_key
from testkit.factories import SERVICE_DATE, prebooking, unique
from testkit.kafka_tap import TopicTap, produce
from tests.integration.conftest import FULL_RESOURCE, SILENT_RESOURCE

pytestmark = pytest.mark.usefixtures("simulator")


async def key_for(redis: Redis, client_id: str) -> dict[str, str]:
    issued = await issue_key(redis, client_id)
    return {"Authorization": f"Bearer {issued.token}"}


async def last_status(
    tap: TopicTap, settings: Settings, command: CreatePrebooking, status: OrderStatus
) -> list[OrderStatusChanged]:
    """The client's distinct events for its order (by event_id: a producer retry may deliver one twice),
    in sequence, once the order reached `status`."""

    def reached() -> list[OrderStatusChanged] | None:
        unique = {
            e.event_id: e
            for e in tap.decoded(
                settings.topic_status_changed,
                OrderStatusChanged,
                lambda e: (e.client_id, e.order_id) == (command.client_id, command.order_id),
            )
        }
        events = sorted(unique.values(), key=lambda e: e.sequence)
        return events if events and events[-1].status is status else None

    return await tap.wait_for(reached)


async def test_two_clients_use_one_order_id_independently(
    service: OrderService,
    settings: Settings,
    tap: TopicTap,
    producer: AIOKafkaProducer,
    redis: Redis,
    api: httpx.AsyncClient,
) -> None:
    """Both get an order of their own; the resource's replies confirm A's and fail B's, and each client's
    events and API answers show only its own order. The two orders' events have different event ids, so
    a consumer of the topic that deduplicates on them (as the contract asks) keeps both clients' events."""
    order_id = unique("ORD-SHARED")
    mine = prebooking("RES-OK", client_id="client-a", order_id=order_id)
    theirs = prebooking(FULL_RESOURCE, client_id="client-b", order_id=order_id)
    await produce(producer, settings.topic_commands, mine, order_id)
    await produce(producer, settings.topic_commands, theirs, order_id)

    confirmed = await last_status(tap, settings, mine, OrderStatus.CONFIRMED)
    failed = await last_status(tap, settings, theirs, OrderStatus.FAILED)

    assert [e.status for e in confirmed] == [OrderStatus.PENDING, OrderStatus.CONFIRMED]
    assert [e.status for e in failed] == [OrderStatus.PENDING, OrderStatus.FAILED]
    assert not {e.event_id for e in confirmed} & {e.event_id for e in failed}
    for client_id, status in (("client-a", OrderStatus.CONFIRMED), ("client-b", OrderStatus.FAILED)):
        answer = await api.get(f"/v1/orders/{order_id}", headers=await key_for(redis, client_id))
        assert (answer.status_code, answer.json()["status"]) == (200, status)


async def test_creating_another_clients_id_gives_an_order_of_ones_own(
    service: OrderService,
    settings: Settings,
    tap: TopicTap,
    producer: AIOKafkaProducer,
    redis: Redis,
    api: httpx.AsyncClient,
) -> None:
    """No oracle: B's create under A's id is accepted and B's own order is Pending (readable, not a 404);
    A's order is untouched, and A can still use the id (nothing squats it)."""
    order_id = unique("ORD-TAKEN")
    first = prebooking(SILENT_RESOURCE, client_id="client-a", order_id=order_id)
    await produce(producer, settings.topic_commands, first, order_id)
    await last_status(tap, settings, first, OrderStatus.PENDING)

    created = await api.post(
        "/v1/orders",
        json={"order_id": order_id, "items": [_item(SILENT_RESOURCE)]},
        headers=await key_for(redis, "client-b"),
    )
    assert created.status_code == 202
    second = prebooking(SILENT_RESOURCE, client_id="client-b", order_id=order_id)
    await last_status(tap, settings, second, OrderStatus.PENDING)

    for client_id in ("client-a", "client-b"):
        answer = await api.get(f"/v1/orders/{order_id}", headers=await key_for(redis, client_id))
        assert (answer.status_code, answer.json()["status"], answer.json()["sequence"]) == (200, 5, 1)
    untouched = await last_status(tap, settings, first, OrderStatus.PENDING)
    assert len(untouched) == 1, "A's order saw no second event"


async def test_deadlines_fire_for_the_right_clients_order(
    service: OrderService, settings: Settings, tap: TopicTap, producer: AIOKafkaProducer
) -> None:
    """A's order under the id times out (its resource never answers) while B's, confirmed, stays so."""
    order_id = unique("ORD-TIMED")
    silent = prebooking(SILENT_RESOURCE, client_id="client-a", order_id=order_id)
    answered = prebooking("RES-OK", client_id="client-b", order_id=order_id)
    await produce(producer, settings.topic_commands, silent, order_id)
    await produce(producer, settings.topic_commands, answered, order_id)

    timed_out = await last_status(tap, settings, silent, OrderStatus.FAILED)
    confirmed = await last_status(tap, settings, answered, OrderStatus.CONFIRMED)

    assert timed_out[-1].reason == "CONFIRMATION_TIMEOUT"
    assert [e.status for e in confirmed] == [OrderStatus.PENDING, OrderStatus.CONFIRMED]


async def test_a_foreign_id_is_answered_like_a_missing_one_in_body_and_time(
    service: OrderService,
    settings: Settings,
    tap: TopicTap,
    producer: AIOKafkaProducer,
    redis: Redis,
    api: httpx.AsyncClient,
) -> None:
    """Another client's order, however large, reads like a missing id: the same 404 body, and a similar time.

    The API reads only `order:{<caller>/<order_id>}`, so a foreign order is never read or parsed; before,
    a large foreign order was parsed before its owner was checked, and answered measurably slower. Medians
    over 50 requests each, interleaved so that load on the shared machine hits both alike; the bound (1.5)
    is generous because both are one Redis miss and the noise of a loaded machine is all that remains.
    """
    order_id = unique("ORD-LARGE")
    large = prebooking(*[SILENT_RESOURCE] * 20, client_id="client-a", order_id=order_id, passengers=5)
    await produce(producer, settings.topic_commands, large, order_id)
    await last_status(tap, settings, large, OrderStatus.PENDING)
    intruder = await key_for(redis, "client-b")
    missing_id = unique("ORD-MISSING")

    foreign = await api.get(f"/v1/orders/{order_id}", headers=intruder)
    missing = await api.get(f"/v1/orders/{missing_id}", headers=intruder)
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()

    foreign_times: list[float] = []
    missing_times: list[float] = []
    for _ in range(50):
        for path, times in ((order_id, foreign_times), (missing_id, missing_times)):
            start = time.perf_counter()
            await api.get(f"/v1/orders/{path}", headers=intruder)
            times.append(time.perf_counter() - start)
    ratio = statistics.median(foreign_times) / statistics.median(missing_times)
    assert 1 / 1.5 < ratio < 1.5, f"foreign/missing median time ratio {ratio:.2f}"


def _item(resource_id: str) -> dict[str, object]:
    return {
        "resource_id": resource_id,
        "product_type": "FAST_TRACK",
        "service_date": SERVICE_DATE.isoformat(),
        "passengers": [{"passenger_id": "PAX-1", "name": "Passenger 1"}],
    }
