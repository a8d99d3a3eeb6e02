"""Secret rotation: the current secret and at most one previous; a rotation applies to the very next attempt
in every relay instance, though each caches configurations."""

from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from service.devstack import Endpoints
from service.kafka import ensure_topics
from service.relay.app import build_relay, relay_topics
from service.store.webhook_endpoints import EndpointStore
from testkit.factories import unique
from testkit.webhook_receiver import WebhookReceiver
from tests.integration.conftest import until_assigned
from tests.relay.conftest import publish, register, relay_settings, status_event


async def test_rotations_keep_the_current_secret_and_at_most_one_previous(redis: Redis) -> None:
    """Five rotations within their grace leave two secrets (the newest and the one it replaced, in its
    grace), not six; a rotation with grace 0 leaves the new secret alone."""
    store = EndpointStore(redis)
    now = datetime.now(UTC)
    endpoint = await store.create(unique("client"), "https://hooks.example.com/orders", now)
    rotated = []
    for n in range(5):
        _, secret = await store.rotate_secret(
            endpoint.endpoint_id, now + timedelta(seconds=n), timedelta(hours=1)
        )
        rotated.append(secret)

    kept = await store.get(endpoint.endpoint_id)
    _, alone = await store.rotate_secret(endpoint.endpoint_id, now + timedelta(seconds=9), timedelta())
    after_zero = await store.get(endpoint.endpoint_id)

    assert kept is not None and [s.secret for s in kept.secrets] == [rotated[-1], rotated[-2]]
    assert kept.secrets[0].expires_at is None
    assert kept.secrets[1].expires_at == now + timedelta(seconds=4) + timedelta(hours=1)
    assert kept.signing_secrets(now + timedelta(seconds=5)) == [rotated[-1], rotated[-2]]
    assert after_zero is not None and [s.secret for s in after_zero.secrets] == [alone]


async def test_no_delivery_after_a_rotation_with_grace_zero_is_signed_with_the_old_secret(
    stack: Endpoints, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """Two relay instances, each with the endpoint's configuration cached (both delivered with the old
    secret first). Right after `rotate_secret(grace=0)` returns, events are published: every one of them
    arrives signed by the new secret only. Polls are a second apart, so a re-read per poll would not do."""
    settings = relay_settings(stack, relay_poll_seconds=1.0)
    await ensure_topics(settings.kafka_bootstrap_servers, relay_topics(settings), 4, 1)
    client = unique("client")
    endpoint = await register(redis, client, receiver.url)
    old = endpoint.secrets[0].secret
    relays = [build_relay(settings), build_relay(settings)]
    for relay in relays:
        await relay.start()
    try:
        for relay in relays:
            await until_assigned(relay.broker)
        before = [status_event(f"ORD-BEFORE-{n}", 1, client) for n in range(20)]
        await publish(producer, settings, *before)
        await receiver.wait_for(lambda: len(receiver.delivered()) == len(before))
        assert all(receiver.verifies(r, old) for r in receiver.delivered())

        _, new = await EndpointStore(redis).rotate_secret(
            endpoint.endpoint_id, datetime.now(UTC), timedelta()
        )
        after = [status_event(f"ORD-AFTER-{n}", 1, client) for n in range(20)]
        await publish(producer, settings, *after)
        await receiver.wait_for(lambda: len(receiver.delivered()) == len(before) + len(after))
    finally:
        for relay in relays:
            await relay.stop()

    signed_after = [r for r in receiver.delivered() if r.body["order_id"].startswith("ORD-AFTER-")]
    assert len(signed_after) == len(after)
    assert all(receiver.verifies(r, new) for r in signed_after)
    assert not any(receiver.verifies(r, old) for r in signed_after)
    assert all(len(r.headers["webhook-signature"].split(" ")) == 1 for r in signed_after)
