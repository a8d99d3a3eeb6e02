"""An endpoint's state changes are announced to its client: an `endpoint_state_changed` webhook to the
client's other endpoints that subscribe to it, and to nobody else."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from service.config import RelaySettings
from service.devstack import Endpoints
from service.relay.app import Relay
from service.store.webhook_endpoints import EndpointStore, WebhookEventType
from testkit.api_keys import issue_key
from testkit.factories import unique
from testkit.webhook_receiver import Reply, WebhookReceiver
from tests.integration.conftest import serving_api
from tests.relay.conftest import publish, relay_settings, status_event

STATE_CHANGES = (WebhookEventType.ENDPOINT_STATE_CHANGED,)


@pytest.fixture
async def watcher() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


def _changes(receiver: WebhookReceiver) -> list[dict[str, object]]:
    return [r.body for r in receiver.delivered() if r.body["type"] == "endpoint_state_changed"]


async def test_disabling_and_enabling_over_the_api_is_announced_to_the_clients_subscribed_endpoints(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, watcher: WebhookReceiver, redis: Redis
) -> None:
    """The watching endpoint gets DISABLED then ACTIVE, signed with its own secret; the endpoint that
    changed, an endpoint of the client not subscribed, and another client's subscribed endpoint get
    nothing of it."""
    endpoints = EndpointStore(redis)
    client, stranger = unique("client"), unique("stranger")
    now = datetime.now(UTC)
    changing = await endpoints.create(client, receiver.url, now, subscribed=STATE_CHANGES)
    watching = await endpoints.create(client, watcher.url, now, subscribed=STATE_CHANGES)
    plain = await endpoints.create(client, receiver.url, now)  # status events only
    foreign = await endpoints.create(stranger, receiver.url, now, subscribed=STATE_CHANGES)
    headers = {"Authorization": f"Bearer {(await issue_key(redis, client)).token}"}

    async with serving_api(settings) as api:
        disabled = await api.post(f"/v1/webhook-endpoints/{changing.endpoint_id}/disable", headers=headers)
        await watcher.wait_for(lambda: len(_changes(watcher)) == 1)
        enabled = await api.post(f"/v1/webhook-endpoints/{changing.endpoint_id}/enable", headers=headers)
        await watcher.wait_for(lambda: len(_changes(watcher)) == 2)

    assert (disabled.status_code, enabled.status_code) == (200, 200)
    first, second = _changes(watcher)
    assert (first["endpoint_id"], first["client_id"]) == (changing.endpoint_id, client)
    assert (first["state"], first["reason"]) == ("DISABLED", "disabled by the client")
    assert (second["state"], second["reason"]) == ("ACTIVE", "enabled by the client")
    assert all(watcher.verifies(r, watching.secrets[0].secret) for r in watcher.delivered())
    # Queued in the request, before its answer: nothing is, or was, queued for the others.
    left_out = [changing.endpoint_id, plain.endpoint_id, foreign.endpoint_id]
    assert set((await relay.deliveries.backlogs(left_out)).values()) == {0}
    for endpoint_id in left_out:
        assert await relay.deliveries.attempts(endpoint_id, 100, str(first["event_id"])) == []
    assert _changes(receiver) == []


@pytest.fixture
def settings(stack: Endpoints) -> RelaySettings:
    """The breaker opens after two failures in a row, so that a test can make it open."""
    return relay_settings(stack, relay_breaker_failures=2, relay_breaker_pause_seconds=60)


async def test_the_relays_own_changes_are_announced_a_410_and_an_open_breaker(
    relay: Relay,
    settings: RelaySettings,
    receiver: WebhookReceiver,
    watcher: WebhookReceiver,
    producer: AIOKafkaProducer,
    redis: Redis,
) -> None:
    """An endpoint answering 410 is announced DISABLED with the reason; one failing twice in a row is
    announced PAUSED, with `paused_until`, when the breaker opens."""
    endpoints = EndpointStore(redis)
    now = datetime.now(UTC)
    client = unique("client")
    gone = await endpoints.create(client, receiver.url, now)
    failing_receiver = WebhookReceiver()
    await failing_receiver.start()
    try:
        failing_receiver.default = Reply(500)
        failing = await endpoints.create(client, failing_receiver.url, now)
        await endpoints.create(client, watcher.url, now, subscribed=STATE_CHANGES)
        receiver.default = Reply(410)
        await publish(producer, settings, status_event(unique("ORD"), 1, client))

        def announced() -> dict[str, dict[str, object]] | None:
            by_endpoint = {str(c["endpoint_id"]): c for c in _changes(watcher)}
            return by_endpoint if {gone.endpoint_id, failing.endpoint_id} <= set(by_endpoint) else None

        changes = await watcher.wait_for(announced)
    finally:
        await failing_receiver.stop()

    assert (changes[gone.endpoint_id]["state"], changes[gone.endpoint_id]["reason"]) == (
        "DISABLED",
        "answered 410 Gone",
    )
    paused = changes[failing.endpoint_id]
    assert (paused["state"], paused["reason"]) == ("PAUSED", "2 failed attempts in a row")
    assert paused["paused_until"] is not None
    assert len(_changes(watcher)) == 2
