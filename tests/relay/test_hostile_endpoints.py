"""Endpoints that fight the relay: a body trickled byte by byte, a name that rebinds to loopback, an answer
that mixes public and internal addresses; and a claim that comes too late to attempt safely."""

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from service.clock import utc_now
from service.config import RelaySettings
from service.devstack import Endpoints
from service.kafka import ensure_topics
from service.relay.app import build_relay, relay_topics
from service.relay.sender import HttpClient
from service.relay.worker import DeliveryWorker
from service.store.webhook_deliveries import DeliveryStore, EndpointClaims, QueuedEvent
from service.store.webhook_endpoints import Endpoint, EndpointState, EndpointStore
from testkit.factories import unique
from testkit.hostile_receivers import SlowBodyReceiver
from testkit.stub_dns import StubDns
from testkit.webhook_receiver import Reply, WebhookReceiver
from tests.integration.conftest import until_assigned
from tests.relay.conftest import publish, register, relay_settings, status_event
from tests.waiting import eventually

PUBLIC = "127.0.0.2"
"""Stands in for a public address: the tests allow only it (ORDERS_RELAY_ALLOWED_NETWORKS), so that
127.0.0.1, where the 'internal' receiver listens, is forbidden as any loopback address is in production."""

HOST = "hooks.rebinding.test"


@pytest.mark.timeout(60)
async def test_a_body_trickled_byte_by_byte_is_cut_at_the_deadline_and_the_event_goes_dead(
    stack: Endpoints, producer: AIOKafkaProducer, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Headers at once, then a byte every 0.2 s, forever: each read comes well within the 0.5 s timeout,
    so only a deadline for the whole attempt ends it. Each attempt is one request, recorded as a timeout;
    the breaker opens after two; the third and last attempt waits out the pause, and the event goes dead.
    No outcome is lost to a lapsed lease."""
    settings = relay_settings(
        stack,
        relay_retry_schedule_seconds=[0.1, 0.1],
        relay_breaker_failures=2,
        relay_breaker_pause_seconds=1.0,
    )
    receiver = SlowBodyReceiver(interval=0.2)
    await receiver.start()
    await ensure_topics(settings.kafka_bootstrap_servers, relay_topics(settings), 4, 1)
    relay = build_relay(settings)
    await relay.start()
    deliveries = DeliveryStore(redis)
    try:
        await until_assigned(relay.broker)
        client = unique("trickled")  # its own: client-a's endpoints are capped, and shared by many tests
        endpoint = await register(redis, client, receiver.url)
        event = status_event("ORD-TRICKLE", 1, client)

        with caplog.at_level(logging.WARNING, logger="service.relay"):
            await publish(producer, settings, event)
            dead = await eventually(lambda: deliveries.dead(endpoint.endpoint_id), timeout=30)
            attempts = dead[event.event_id]["attempts"]
            await eventually(lambda: receiver.open_requests == 0, timeout=5)
            stored = await EndpointStore(redis).get(endpoint.endpoint_id)
    finally:
        await relay.stop()
        await receiver.stop()

    assert len(attempts) == 3 == len(receiver.received), "one request per attempt, three attempts"
    assert all(r.webhook_id == event.event_id for r in receiver.received)
    for attempt in attempts:
        assert attempt["status"] is None
        assert attempt["error"].startswith("no answer within 0.5s: status 200 came"), attempt
        assert 500 <= attempt["latency_ms"] < 1500, "cut at the deadline, not at some later read"
    first, second, third = (r.at for r in receiver.received)
    assert second - first < 1.0, "the retry after 0.1 s"
    assert third - second >= 0.5 + 1.0 - 0.1, "the breaker held the last attempt back for its pause"
    assert stored is not None and stored.consecutive_failures == 3
    assert stored.paused_until is not None and stored.paused_until > datetime.now(UTC) - timedelta(seconds=5)
    assert not [r for r in caplog.records if r.getMessage() == "relay.lease_lost"]


@pytest.fixture
async def public() -> AsyncIterator[WebhookReceiver]:
    """The receiver at the 'public' address; it closes every connection, so each attempt needs a new one,
    with a lookup of its own."""
    receiver = WebhookReceiver(host=PUBLIC)
    receiver.default = Reply(headers={"connection": "close"})
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def internal(public: WebhookReceiver) -> AsyncIterator[WebhookReceiver]:
    """A receiver at loopback, on the same port: what a rebinding attacker wants the relay to call."""
    receiver = WebhookReceiver(public.port, host="127.0.0.1")
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def pinned_settings(stack: Endpoints) -> RelaySettings:
    return relay_settings(stack, relay_allowed_networks=[f"{PUBLIC}/32"])


async def _deliver(
    redis: Redis,
    settings: RelaySettings,
    dns: StubDns,
    events: Sequence[tuple[str, int]],
    port: int,
    deliveries: DeliveryStore | None = None,
) -> tuple[Endpoint, DeliveryWorker, HttpClient]:
    """Register an endpoint at `HOST`, queue `events` (order, sequence) for it, and start a delivery loop
    whose HTTP client looks names up in `dns`."""
    endpoints = EndpointStore(redis)
    deliveries = deliveries or DeliveryStore(redis)
    endpoint = await endpoints.create(unique("hostile"), f"http://{HOST}:{port}/hooks", datetime.now(UTC))
    queued = [
        QueuedEvent(
            endpoint_id=endpoint.endpoint_id,
            order_id=order_id,
            event_id=status_event(order_id, sequence).event_id,
            sequence=sequence,
            body=status_event(order_id, sequence).model_dump_json().encode(),
        )
        for order_id, sequence in events
    ]
    await deliveries.enqueue(queued, utc_now())
    client = HttpClient(settings.relay_allowed_networks, lookup=dns)
    worker = DeliveryWorker(endpoints, deliveries, client, settings, utc_now)
    await worker.start()
    return endpoint, worker, client


async def _stop(worker: DeliveryWorker, client: HttpClient) -> None:
    await worker.stop()
    await client.aclose()


async def test_a_name_that_rebinds_to_loopback_never_gets_a_request_there(
    redis: Redis, pinned_settings: RelaySettings, public: WebhookReceiver, internal: WebhookReceiver
) -> None:
    """The DNS answers the public address first, loopback from then on (a TTL of zero). The first event
    goes to the address its connection's lookup returned; the second connection's lookup finds only
    loopback, so the endpoint is disabled as unsafe and nothing reaches loopback, then or later."""
    dns = StubDns({HOST: [[PUBLIC], ["127.0.0.1"]]})
    order = "ORD-REBIND"
    endpoint, worker, client = await _deliver(
        redis, pinned_settings, dns, [(order, 1), (order, 2)], public.port
    )
    try:
        await public.wait_for(public.delivered)
        disabled = await eventually(lambda: _disabled(redis, endpoint.endpoint_id))
    finally:
        await _stop(worker, client)

    assert [r.body["sequence"] for r in public.received] == [1]
    assert internal.received == [], "no request reached loopback"
    assert "unsafe target" in (disabled.state_reason or "")
    assert "127.0.0.1" in (disabled.state_reason or "")
    assert dns.lookups == [HOST, HOST], "one lookup per connection, none besides"
    backlog = await DeliveryStore(redis).backlogs([endpoint.endpoint_id])
    assert backlog[endpoint.endpoint_id] == 1, "the second event stays queued for when it is fixed"


async def test_an_answer_mixing_loopback_and_public_addresses_is_called_only_at_the_public_one(
    redis: Redis, pinned_settings: RelaySettings, public: WebhookReceiver, internal: WebhookReceiver
) -> None:
    """Loopback first in every answer: the connector tries the addresses in order, so only the filter
    keeps it away from loopback. Every event arrives, at the public address only."""
    dns = StubDns({HOST: [["127.0.0.1", PUBLIC]]})
    events = [(f"ORD-MIXED-{n}", 1) for n in range(4)]
    endpoint, worker, client = await _deliver(redis, pinned_settings, dns, events, public.port)
    try:
        await public.wait_for(lambda: len(public.delivered()) >= len(events))
    finally:
        await _stop(worker, client)

    assert sorted(r.body["order_id"] for r in public.delivered()) == sorted(o for o, _ in events)
    assert internal.received == []
    stored = await EndpointStore(redis).get(endpoint.endpoint_id)
    assert stored is not None and stored.state is EndpointState.ACTIVE


async def test_a_name_that_does_not_resolve_is_a_failed_attempt_not_a_disabled_endpoint(
    redis: Redis, pinned_settings: RelaySettings, public: WebhookReceiver
) -> None:
    """DNS trouble may pass: the attempt fails and is retried, the endpoint stays active."""
    dns = StubDns({})
    endpoint, worker, client = await _deliver(redis, pinned_settings, dns, [("ORD-NXDOMAIN", 1)], public.port)
    deliveries = DeliveryStore(redis)
    try:
        dead = await eventually(lambda: deliveries.dead(endpoint.endpoint_id))
    finally:
        await _stop(worker, client)

    [record] = dead.values()
    assert len(record["attempts"]) == len(pinned_settings.relay_retry_schedule_seconds) + 1
    assert all(f"cannot resolve {HOST}" in a["error"] for a in record["attempts"])
    stored = await EndpointStore(redis).get(endpoint.endpoint_id)
    assert stored is not None and stored.state is EndpointState.ACTIVE
    assert public.received == []


class SlowFirstRead(DeliveryStore):
    """Redis stalling once, right after a claim: the attempt would start with less of its lease left than
    it may take."""

    def __init__(self, redis: Redis, stall: float) -> None:
        super().__init__(redis)
        self._stall: float | None = stall

    async def claim_checked(
        self,
        requests: dict[str, tuple[int, str | None]],
        now: datetime,
        lease_seconds: float,
        *,
        with_heads: bool = False,
    ) -> dict[str, EndpointClaims]:
        found = await super().claim_checked(requests, now, lease_seconds, with_heads=with_heads)
        if self._stall is not None and any(f.claims for f in found.values()):
            stall, self._stall = self._stall, None
            await asyncio.sleep(stall)  # the claim made, its lease running
        return found


@pytest.mark.timeout(30)
async def test_an_attempt_never_outlives_its_lease_so_no_order_has_two_in_flight(
    redis: Redis, pinned_settings: RelaySettings, public: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """The lease is 6 s (2 x 0.5 s + 5 s). A stall of 5.7 s between claim and attempt leaves 0.3 s of it;
    the receiver takes 0.45 s (within the timeout), so an attempt started then would still be in flight
    when the lease lapses and the queue is claimed again. Instead the claim is handed back unattempted,
    and the event is sent once, by the next claim."""
    public.default = Reply(delay=0.45, headers={"connection": "close"})
    dns = StubDns({HOST: [[PUBLIC]]})
    stalling = SlowFirstRead(redis, stall=5.7)
    with caplog.at_level(logging.WARNING, logger="service.relay"):
        endpoint, worker, client = await _deliver(
            redis, pinned_settings, dns, [("ORD-STALL", 1)], public.port, deliveries=stalling
        )
        try:
            await public.wait_for(public.delivered, timeout=20)
            attempts = await eventually(lambda: stalling.attempts(endpoint.endpoint_id))
        finally:
            await _stop(worker, client)

    assert len(public.received) == 1, "sent once"
    assert [a["status"] for a in attempts] == ["200"], "one attempt recorded, the one made"
    messages = [r.getMessage() for r in caplog.records]
    assert "relay.lease_short" in messages
    assert "relay.lease_lost" not in messages


async def _disabled(redis: Redis, endpoint_id: str) -> Endpoint | None:
    endpoint = await EndpointStore(redis).get(endpoint_id)
    return endpoint if endpoint is not None and endpoint.state is EndpointState.DISABLED else None
