"""The relay against the real broker, Redis and HTTP receivers that verify Standard Webhooks signatures."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from service.config import RelaySettings
from service.devstack import free_port
from service.relay.app import Relay
from service.store.webhook_endpoints import Endpoint, EndpointState, EndpointStore
from testkit.webhook_receiver import Reply, WebhookReceiver
from tests.relay.conftest import publish, register, status_event
from tests.waiting import eventually


async def test_event_is_delivered_signed_once(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """A 200 settles it: one request, webhook-id = event_id, signature valid for the endpoint's secret."""
    endpoint = await register(redis, "client-a", receiver.url)
    event = status_event("ORD-1", 1)

    await publish(producer, settings, event)

    [got] = await receiver.wait_for(lambda: receiver.delivered(event.event_id))
    assert got.webhook_id == event.event_id
    assert receiver.verifies(got, endpoint.secrets[0].secret)
    assert not receiver.verifies(got, "whsec_" + "A" * 43 + "=")
    assert got.body["order_id"] == "ORD-1"


async def test_failure_is_retried_and_every_attempt_logged(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """500, then a timeout, then 200: delivered on the third attempt; the log keeps all three."""
    endpoint = await register(redis, "client-a", receiver.url)
    receiver.script = [Reply(500), Reply(200, delay=1.0)]
    event = status_event("ORD-2", 1)

    await publish(producer, settings, event)

    await receiver.wait_for(lambda: len(receiver.received) >= 3)
    attempts = await eventually(lambda: _attempts_of(relay, endpoint.endpoint_id, event.event_id, 3))
    assert [a["status"] for a in reversed(attempts)] == ["500", "", "200"]
    assert "no answer" in attempts[1]["error"]
    assert all(receiver.verifies(r, endpoint.secrets[0].secret) for r in receiver.received)
    # Each attempt logs the headers it sent, but for the signature (the portal's attempt page shows them).
    # (The receiver records the timed-out request when its late answer goes out: match by content.)
    sent = [{name.lower(): value for name, value in r.headers.items()} for r in receiver.received]
    for attempt in attempts:
        logged = json.loads(attempt["request_headers"])
        assert {"webhook-id", "webhook-timestamp", "content-type"} <= set(logged)
        assert "webhook-signature" not in logged
        assert any(logged == {name: headers[name] for name in logged} for headers in sent)


async def _attempts_of(
    relay: Relay, endpoint_id: str, event_id: str, count: int
) -> list[dict[str, str]] | None:
    attempts = await relay.deliveries.attempts(endpoint_id, 100, event_id)
    return attempts if len(attempts) >= count else None


async def test_retry_after_is_honoured(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """429 with Retry-After: 1 holds the next attempt back a second, though the schedule says 0.1 s."""
    await register(redis, "client-a", receiver.url)
    receiver.script = [Reply(429, headers={"Retry-After": "1"})]

    await publish(producer, settings, status_event("ORD-3", 1))

    first, second = await receiver.wait_for(
        lambda: receiver.received[:2] if len(receiver.received) >= 2 else None
    )
    assert second.at - first.at >= 0.9
    assert second.status == 200


async def test_gone_disables_the_endpoint(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """410 Gone: the endpoint is disabled with the reason, and no further attempt is made."""
    endpoint = await register(redis, "client-a", receiver.url)
    receiver.default = Reply(410)

    await publish(producer, settings, status_event("ORD-4", 1))

    disabled = await eventually(lambda: _state_is(redis, endpoint.endpoint_id, EndpointState.DISABLED))
    assert "410" in (disabled.state_reason or "")
    assert len(receiver.received) == 1


async def _state_is(redis: Redis, endpoint_id: str, state: EndpointState) -> Endpoint | None:
    endpoint = await EndpointStore(redis).get(endpoint_id)
    return endpoint if endpoint is not None and endpoint.state is state else None


async def test_refused_connections_end_dead_and_replay_delivers(
    relay: Relay, settings: RelaySettings, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """Nobody listening: every scheduled attempt fails, the delivery is dead with each outcome; once the
    receiver is up, replaying it delivers it."""
    port = free_port()
    receiver = WebhookReceiver(port)
    endpoint = await register(redis, "client-a", receiver.url)
    event = status_event("ORD-5", 1)

    await publish(producer, settings, event)

    dead = await eventually(lambda: relay.deliveries.dead(endpoint.endpoint_id))
    attempts = dead[event.event_id]["attempts"]
    assert len(attempts) == 1 + len(settings.relay_retry_schedule_seconds)
    assert all(a["status"] is None and "Connect" in a["error"] for a in attempts)

    await receiver.start()
    try:
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        assert await relay.deliveries.replay_since(endpoint.endpoint_id, an_hour_ago, datetime.now(UTC)) == 1
        [got] = await receiver.wait_for(lambda: receiver.delivered(event.event_id))
        assert receiver.verifies(got, endpoint.secrets[0].secret)
        assert await relay.deliveries.dead(endpoint.endpoint_id) == {}
    finally:
        await receiver.stop()


async def test_receiver_down_for_a_while_gets_everything_in_order(
    receiver: WebhookReceiver,
    producer: AIOKafkaProducer,
    redis: Redis,
    settings: RelaySettings,
    relay: Relay,
) -> None:
    """503s for a while, then back: every event of every order arrives, each order's in sequence."""
    await register(redis, "client-a", receiver.url)
    receiver.script = [Reply(503)] * 12
    orders = [f"ORD-DOWN-{n}" for n in range(4)]
    events = [status_event(order_id, sequence) for sequence in (1, 2, 3) for order_id in orders]

    await publish(producer, settings, *events)

    await receiver.wait_for(
        lambda: {r.webhook_id for r in receiver.delivered()} >= {e.event_id for e in events}
    )
    for order_id in orders:
        sequences = [r.body["sequence"] for r in receiver.delivered() if r.body["order_id"] == order_id]
        assert sequences == [1, 2, 3], f"{order_id} delivered as {sequences}"


async def test_one_failing_endpoint_does_not_delay_another(
    relay: Relay, settings: RelaySettings, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """Endpoint A hangs until the timeout on every request; B, of another client, gets everything at once."""
    slow, fast = WebhookReceiver(), WebhookReceiver()
    slow.default = Reply(200, delay=5.0)
    await slow.start()
    await fast.start()
    try:
        await register(redis, "client-slow", slow.url)
        await register(redis, "client-fast", fast.url)
        slow_events = [status_event(f"ORD-S-{n}", 1, "client-slow") for n in range(10)]
        fast_events = [status_event(f"ORD-F-{n}", 1, "client-fast") for n in range(10)]
        started = asyncio.get_running_loop().time()

        await publish(producer, settings, *slow_events, *fast_events)

        await fast.wait_for(lambda: len(fast.delivered()) == len(fast_events))
        assert asyncio.get_running_loop().time() - started < settings.relay_timeout_seconds * 4
        assert fast.delivered() and not slow.delivered()
    finally:
        await slow.stop()
        await fast.stop()


async def test_rotation_signs_with_both_secrets_during_the_grace_period(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """After a rotation a receiver still holding the old secret verifies, and so does one with the new."""
    store = EndpointStore(redis)
    endpoint = await register(redis, "client-a", receiver.url)
    old = endpoint.secrets[0].secret
    _, new = await store.rotate_secret(endpoint.endpoint_id, datetime.now(UTC), timedelta(hours=1))
    event = status_event("ORD-ROT", 1)

    await publish(producer, settings, event)

    [got] = await receiver.wait_for(lambda: receiver.delivered(event.event_id))
    assert receiver.verifies(got, old) and receiver.verifies(got, new)
    assert len(got.headers["webhook-signature"].split(" ")) == 2


async def test_redirects_are_failures_and_not_followed(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """A 302 counts as a failed attempt and its Location is never requested; the retry then succeeds."""
    await register(redis, "client-a", receiver.url)
    receiver.script = [Reply(302, headers={"Location": "http://169.254.169.254/latest"})]
    event = status_event("ORD-302", 1)

    await publish(producer, settings, event)

    await receiver.wait_for(lambda: receiver.delivered(event.event_id))
    assert [r.status for r in receiver.received] == [302, 200]


async def test_an_oversized_event_is_dead_at_once_and_never_sent(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """Request sizes are bounded: an event over ORDERS_RELAY_MAX_REQUEST_BYTES is given up with the reason.
    No order inside the contract's limits produces one (the limit is at least MAX_EVENT_BYTES), so this one
    is made by hand, as a newer or misconfigured producer could."""
    limit = settings.relay_max_request_bytes
    endpoint = await register(redis, "client-a", receiver.url)
    event = status_event("ORD-BIG", 1).model_copy(update={"reason": "x" * limit})

    await publish(producer, settings, event)

    dead = await eventually(lambda: relay.deliveries.dead(endpoint.endpoint_id))
    [attempt] = dead[event.event_id]["attempts"]
    assert f"exceeds {limit}" in attempt["error"]
    assert receiver.received == []


async def test_an_event_with_fields_the_relay_does_not_know_is_delivered_whole(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """A newer service's event (one more field, at the top and in the view) is queued and sent as it was
    published: an older relay reads what it knows and forwards the rest untouched."""
    endpoint = await register(redis, "client-a", receiver.url)
    event = json.loads(status_event("ORD-NEWER", 1).model_dump_json())
    event["added_later"] = {"note": "from a newer service"}
    event["order"]["added_later"] = True
    body = json.dumps(event).encode()

    await producer.send_and_wait(settings.topic_status_changed, body, key=b"ORD-NEWER")

    [got] = await receiver.wait_for(lambda: receiver.delivered(event["event_id"]))
    assert got.body == event
    assert receiver.verifies(got, endpoint.secrets[0].secret)
