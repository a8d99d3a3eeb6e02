"""A slot holds two queues and attempts them in turn: one queue's settle runs while the other's request is in
flight, yet the slot sends one request at a time, each queue's next event only once its previous one is
settled, and at most `FOLLOW_LIMIT` in all; what it holds unattempted when the worker stops is handed back."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio import Redis

from service.config import RelaySettings
from service.devstack import Endpoints
from service.relay.sender import HttpClient
from service.relay.worker import FOLLOW_LIMIT, DeliveryWorker
from service.store.webhook_deliveries import Claim, DeliveryStore, Head, Outcome, QueuedEvent, Settled
from service.store.webhook_endpoints import Endpoint, EndpointStore
from testkit.factories import unique
from testkit.webhook_receiver import Reply, WebhookReceiver
from tests.relay.conftest import register, relay_settings, status_event
from tests.waiting import eventually


class CountingReceiver(WebhookReceiver):
    """Notes when each request arrives, and the most it was ever answering at once."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}
        self.in_flight = 0
        self.peak = 0
        self.second = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.Response:
        self.arrived[request.headers["webhook-id"]] = asyncio.get_running_loop().time()
        if len(self.arrived) >= 2:
            self.second.set()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await super()._handle(request)
        finally:
            self.in_flight -= 1


class WatchedSettles(DeliveryStore):
    """Notes when each settle of one endpoint answered; the first delivery's settle waits (5 s at most)
    until a second request has arrived at the receiver."""

    def __init__(self, redis: Redis, endpoint_id: str, second_request: asyncio.Event) -> None:
        super().__init__(redis)
        self._endpoint_id = endpoint_id
        self._second_request = second_request
        self.settled: dict[str, float] = {}
        self.overlapped: bool | None = None

    async def settle(
        self, claim: Claim, head: Head, outcome: Outcome, *args: Any, **kwargs: Any
    ) -> Settled | None:
        if claim.endpoint_id == self._endpoint_id and self.overlapped is None:
            try:
                await asyncio.wait_for(self._second_request.wait(), 5)
                self.overlapped = True
            except TimeoutError:
                self.overlapped = False
        settled = await super().settle(claim, head, outcome, *args, **kwargs)
        if claim.endpoint_id == self._endpoint_id:
            self.settled[head.event.event_id] = asyncio.get_running_loop().time()
        return settled


@pytest.fixture
async def counting() -> AsyncIterator[CountingReceiver]:
    receiver = CountingReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def one_slot(stack: Endpoints) -> RelaySettings:
    return relay_settings(stack, relay_concurrency_per_endpoint=1)


async def _queue(deliveries: DeliveryStore, endpoint: Endpoint, orders: dict[str, int]) -> None:
    events = [status_event(order, n) for order, count in orders.items() for n in range(1, count + 1)]
    queued = [QueuedEvent.of(endpoint.endpoint_id, e, e.model_dump_json().encode()) for e in events]
    await deliveries.enqueue(queued, datetime.now(UTC))


async def test_a_settle_overlaps_the_other_queues_request_one_request_at_a_time_each_queue_in_order(
    one_slot: RelaySettings, counting: CountingReceiver, redis: Redis
) -> None:
    """One slot (the endpoint's concurrency is 1), two orders of three events: the first delivery's settle
    is still in flight when the slot's next request arrives, and yet no two requests were ever in flight,
    and each order's next event arrived only after its previous one was settled."""
    endpoint = await register(redis, unique("client"), counting.url)
    deliveries = WatchedSettles(redis, endpoint.endpoint_id, counting.second)
    await _queue(deliveries, endpoint, {"ORD-L1": 3, "ORD-L2": 3})
    client = HttpClient(one_slot.relay_allowed_networks)
    worker = DeliveryWorker(EndpointStore(redis), deliveries, client, one_slot, lambda: datetime.now(UTC))
    try:
        await worker.dispatch_due()  # one round, and the loop never started: one slot does it all
        await counting.wait_for(lambda: len(counting.delivered()) == 6, timeout=20)
        await eventually(lambda: len(deliveries.settled) == 6)
    finally:
        await worker.stop()
        await client.aclose()

    assert deliveries.overlapped, "the slot's next request waited for the previous settle"
    assert counting.peak == 1, f"{counting.peak} requests of a one-slot endpoint in flight at once"
    for order in ("ORD-L1", "ORD-L2"):
        ids = [status_event(order, n).event_id for n in (1, 2, 3)]
        assert [r.webhook_id for r in counting.delivered() if r.body["order_id"] == order] == ids
        for previous, following in pairwise(ids):
            assert counting.arrived[following] > deliveries.settled[previous], f"{order}: sent before settled"


async def test_a_slot_attempts_at_most_the_follow_limit_over_both_its_queues(
    one_slot: RelaySettings, counting: CountingReceiver, redis: Redis
) -> None:
    """Two orders of 20 events, one slot: it stops after `FOLLOW_LIMIT` deliveries in all (not that many
    per queue), leaving both queues due for the next round."""
    endpoint = await register(redis, unique("client"), counting.url)
    counting.second.set()  # nothing waits for it here
    deliveries = DeliveryStore(redis)
    await _queue(deliveries, endpoint, {"ORD-F1": 20, "ORD-F2": 20})
    client = HttpClient(one_slot.relay_allowed_networks)
    worker = DeliveryWorker(EndpointStore(redis), deliveries, client, one_slot, lambda: datetime.now(UTC))
    claimed: set[str] = set()

    async def both_due_again() -> bool:
        """Each queue is due again once the slot lets go of it; claimed here, no further round takes it."""
        found = await deliveries.claim({endpoint.endpoint_id: 10}, datetime.now(UTC), 30)
        claimed.update(c.queue_id for c in found)
        return len(claimed) == 2

    try:
        await worker.dispatch_due()  # one round, and the loop never started
        await eventually(both_due_again, timeout=15)
    finally:
        await worker.stop()
        await client.aclose()

    assert claimed == {"ORD-F1", "ORD-F2"}
    assert len(counting.delivered()) == FOLLOW_LIMIT


async def test_a_queue_held_unattempted_is_handed_back_when_the_worker_stops(
    one_slot: RelaySettings, counting: CountingReceiver, redis: Redis
) -> None:
    """Stopping while the slot's first request is in flight: that attempt finishes and is settled; the
    slot's other queue, never attempted, is due again at once rather than leased until its lease lapses."""
    endpoint = await register(redis, unique("client"), counting.url)
    counting.default = Reply(delay=0.3)
    deliveries = DeliveryStore(redis)
    await _queue(deliveries, endpoint, {"ORD-H1": 1, "ORD-H2": 1})
    client = HttpClient(one_slot.relay_allowed_networks)
    worker = DeliveryWorker(EndpointStore(redis), deliveries, client, one_slot, lambda: datetime.now(UTC))
    try:
        await worker.dispatch_due()
        assert await deliveries.claim({endpoint.endpoint_id: 10}, datetime.now(UTC), 30) == [], (
            "both queues leased to the one slot"
        )
        await eventually(lambda: counting.in_flight)
        await worker.stop()
    finally:
        await client.aclose()

    [delivered] = counting.delivered()
    claimed = await deliveries.claim({endpoint.endpoint_id: 10}, datetime.now(UTC), 30)
    assert [c.queue_id for c in claimed] == [({"ORD-H1", "ORD-H2"} - {delivered.body["order_id"]}).pop()], (
        "the queue not attempted is due now"
    )
    assert await deliveries.backlogs([endpoint.endpoint_id]) == {endpoint.endpoint_id: 1}
