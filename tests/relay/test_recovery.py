"""Recovering missed events: what an endpoint did not get while it was disabled is read again from the
topics and delivered once, in order per order, and only its own client's."""

from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.events import OrderStatusChanged
from service.config import RelaySettings
from service.relay.app import Relay
from service.relay.recovery import BeyondHorizon, recover_missed
from service.store.webhook_endpoints import Endpoint, EndpointState
from testkit.api_keys import issue_key
from testkit.factories import unique
from testkit.webhook_receiver import WebhookReceiver
from tests.integration.conftest import serving_api
from tests.relay.conftest import publish, register, status_event


async def _published_while_disabled(
    relay: Relay,
    settings: RelaySettings,
    producer: AIOKafkaProducer,
    receiver: WebhookReceiver,
    endpoint: Endpoint,
    missed: list[OrderStatusChanged],
) -> None:
    """Publish `missed` while `endpoint` is disabled, and wait until the relay has read past them: a
    witness endpoint of another client gets an event published after each, on the same partition."""
    await relay.endpoints.set_state(endpoint.endpoint_id, EndpointState.DISABLED, "disabled by the client")
    witness_client = unique("witness")
    await register(relay.redis, witness_client, receiver.url)
    await publish(producer, settings, *missed)
    witnesses = []
    for order_id in sorted({e.order_id for e in missed}):
        witness = status_event(unique("W"), 1, witness_client)
        witnesses.append(witness)
        await producer.send_and_wait(
            settings.topic_status_changed, witness.model_dump_json().encode(), key=order_id.encode()
        )
    for witness in witnesses:
        await receiver.wait_for(lambda witness=witness: receiver.delivered(witness.event_id))  # type: ignore[misc]
    await relay.endpoints.set_state(endpoint.endpoint_id, EndpointState.ACTIVE, None)


async def test_missed_events_are_delivered_once_in_order_and_only_the_clients(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer
) -> None:
    """Events published while the endpoint was disabled were not queued; recovered since before them, each
    arrives once, each order's in sequence. Another client's events and events before `since` stay out,
    and recovering again sends nothing more."""
    client = unique("client")
    endpoint = await register(relay.redis, client, receiver.url)
    before = status_event(unique("OLD"), 1, client)
    await publish(producer, settings, before)
    await receiver.wait_for(lambda: receiver.delivered(before.event_id))
    since = datetime.now(UTC)
    orders = [unique("ORD"), unique("ORD")]
    missed = [status_event(order, sequence, client) for order in orders for sequence in (1, 2, 3)]
    await _published_while_disabled(relay, settings, producer, receiver, endpoint, missed)
    assert not [r for r in receiver.delivered() if r.webhook_id in {e.event_id for e in missed}]

    first = await recover_missed(settings, relay.deliveries, endpoint, since=since, now=datetime.now(UTC))
    await receiver.wait_for(lambda: all(receiver.delivered(e.event_id) for e in missed))
    again = await recover_missed(settings, relay.deliveries, endpoint, since=since, now=datetime.now(UTC))

    assert (first.read, first.queued) == (6, 6)  # the witnesses are another client's; `before` is older
    assert again.read == 6
    assert (await relay.deliveries.backlogs([endpoint.endpoint_id]))[endpoint.endpoint_id] == 0
    mine = [r for r in receiver.delivered() if r.body["client_id"] == client]
    assert [r.webhook_id for r in mine].count(before.event_id) == 1
    for order in orders:
        got = [r.body["sequence"] for r in mine if r.body["order_id"] == order]
        assert got == [1, 2, 3], order


async def test_recovery_is_refused_beyond_the_topics_retention(relay: Relay, settings: RelaySettings) -> None:
    """Kafka holds events for `ORDERS_TOPIC_RETENTION_MS`: older ones cannot be recovered."""
    endpoint = await register(relay.redis, unique("client"), "http://127.0.0.1:9/")
    now = datetime.now(UTC)
    too_old = now - timedelta(milliseconds=settings.topic_retention_ms) - timedelta(seconds=1)

    with pytest.raises(BeyondHorizon, match="ORDERS_TOPIC_RETENTION_MS"):
        await recover_missed(settings, relay.deliveries, endpoint, since=too_old, now=now)


async def test_the_api_recovers_for_the_callers_endpoint_only(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """`POST …/recover` answers 202 and the missed events arrive; another client's endpoint is 404, a time
    beyond the horizon 422."""
    client = unique("client")
    headers = {"Authorization": f"Bearer {(await issue_key(redis, client)).token}"}
    stranger = {"Authorization": f"Bearer {(await issue_key(redis, unique('stranger'))).token}"}
    endpoint = await register(redis, client, receiver.url)
    since = datetime.now(UTC)
    missed = [status_event(unique("ORD"), 1, client)]
    await _published_while_disabled(relay, settings, producer, receiver, endpoint, missed)
    path = f"/v1/webhook-endpoints/{endpoint.endpoint_id}/recover"
    old = (since - timedelta(days=30)).isoformat()

    async with serving_api(settings) as api:
        foreign = await api.post(path, json={"since": since.isoformat()}, headers=stranger)
        beyond = await api.post(path, json={"since": old}, headers=headers)
        started = await api.post(path, json={"since": since.isoformat()}, headers=headers)
        await receiver.wait_for(lambda: receiver.delivered(missed[0].event_id))

    assert foreign.status_code == 404
    assert beyond.status_code == 422 and "ORDERS_TOPIC_RETENTION_MS" in beyond.json()["detail"]
    assert started.status_code == 202
    assert started.json()["endpoint_id"] == endpoint.endpoint_id
