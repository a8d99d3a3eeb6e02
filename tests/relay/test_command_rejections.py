"""Command rejections as webhooks: delivered, signed, to the endpoints subscribed to them, each rejection a
delivery unit of its own beside its order's status events."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.events import CommandRejected
from service.config import RelaySettings
from service.devstack import Endpoints
from service.relay.app import Relay
from service.store.keys import webhook_done_key, webhook_settled_key
from service.store.webhook_deliveries import Claim, DeliveryStore, Head, Outcome, QueuedEvent, rejection_queue
from service.store.webhook_endpoints import EndpointStore
from testkit.factories import unique
from testkit.webhook_receiver import WebhookReceiver
from tests.relay.conftest import BOTH, publish, queued_status, rejection, status_event, subscribe
from tests.waiting import eventually

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def test_a_rejection_is_delivered_signed_to_the_endpoints_subscribed_to_it_only(
    relay: Relay, settings: RelaySettings, receiver: WebhookReceiver, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """The subscribed endpoint gets the rejection (the bytes published, `type` command_rejected, signed
    like every delivery) and the status event; an endpoint with the default types gets the status event
    only, as before."""
    client = unique("client")
    subscribed = await subscribe(redis, client, receiver.url, *BOTH)
    default = WebhookReceiver()
    await default.start()
    try:
        plain = await subscribe(redis, client, default.url)
        refused, changed = rejection("ORD-R1", client), status_event("ORD-R1", 1, client)
        await producer.send_and_wait(
            settings.topic_command_rejected, refused.model_dump_json().encode(), key=b"ORD-R1"
        )
        await publish(producer, settings, changed)

        [got] = await receiver.wait_for(lambda: receiver.delivered(refused.event_id))
        await receiver.wait_for(lambda: receiver.delivered(changed.event_id))
        await default.wait_for(lambda: default.delivered(changed.event_id))
    finally:
        await default.stop()

    assert got.raw == refused.model_dump_json().encode()
    assert (got.webhook_id, got.body["type"]) == (refused.event_id, "command_rejected")
    assert receiver.verifies(got, subscribed.secrets[0].secret)
    assert [r.body["type"] for r in default.received] == ["order_status_changed"]
    assert await relay.deliveries.attempts(plain.endpoint_id, 100, refused.event_id) == []
    # The receiver records a request as it arrives; the relay records the attempt once it has the answer.
    [attempt] = await eventually(
        lambda: relay.deliveries.attempts(subscribed.endpoint_id, 100, refused.event_id)
    )
    assert (attempt["order_id"], attempt["sequence"], attempt["status"]) == ("ORD-R1", "", "200")


async def test_a_rejection_is_a_queue_of_its_own_settled_once_and_remembered_for_a_bounded_time(
    redis: Redis,
) -> None:
    """Queued beside its order's status events, a rejection is claimed on its own (neither waits for the
    other); once settled it is not queued again, and leaves no `done` field; a dead one is replayed into
    its own queue; the settled record is trimmed after the memory period."""
    endpoints, deliveries = EndpointStore(redis), DeliveryStore(redis, settled_memory_seconds=60)
    endpoint = await endpoints.create(unique("client"), "https://hooks.example.com/a", NOW)
    ep = endpoint.endpoint_id
    first, second = rejection("ORD-1", endpoint.client_id), rejection("ORD-1", endpoint.client_id)
    await deliveries.enqueue(
        [queued_status(ep, "ORD-1", 1), queued_status(ep, "ORD-1", 2), _rejected(ep, first)], NOW
    )

    claims = await deliveries.claim({ep: 10}, NOW, 30)
    heads = {c.queue_id: h for c, h in zip(claims, await deliveries.heads(claims), strict=True)}
    assert set(heads) == {"ORD-1", rejection_queue(first.event_id)}, "two queues, both due at once"
    by_queue = {c.queue_id: c for c in claims}
    head = heads[rejection_queue(first.event_id)]
    assert head is not None and (head.event.order_id, head.event.sequence) == ("ORD-1", None)
    await _settle(deliveries, by_queue[rejection_queue(first.event_id)], head, "delivered", NOW)

    await deliveries.enqueue([_rejected(ep, first)], NOW)  # the topic read again
    assert await deliveries.backlogs([ep]) == {ep: 1}, "only the order's queue is left"
    assert await redis.hkeys(webhook_done_key(ep)) == [], "the order's event is still in flight"

    later = NOW + timedelta(minutes=2)
    await deliveries.enqueue([_rejected(ep, second)], later)
    [claim] = [c for c in await deliveries.claim({ep: 10}, later, 30) if c.queue_id != "ORD-1"]
    [dead] = await deliveries.heads([claim])
    assert dead is not None
    await _settle(deliveries, claim, dead, "dead", later)
    settled = await redis.zrange(webhook_settled_key(ep), 0, -1)
    assert settled == [rejection_queue(second.event_id).encode()], "the first one's record was trimmed"

    assert await deliveries.replay(ep, [second.event_id], later) == 1
    [replayed] = [c for c in await deliveries.claim({ep: 10}, later, 30) if c.queue_id != "ORD-1"]
    assert replayed.queue_id == rejection_queue(second.event_id)

    await endpoints.delete(endpoint)
    keys: list[bytes] = await redis.keys(f"*{{{ep}}}*")  # type: ignore[assignment]
    assert keys == []


def _rejected(endpoint_id: str, event: CommandRejected) -> QueuedEvent:
    return QueuedEvent(
        endpoint_id=endpoint_id,
        order_id=event.order_id,
        event_id=event.event_id,
        sequence=None,
        body=event.model_dump_json().encode(),
    )


async def _settle(
    deliveries: DeliveryStore, claim: Claim, head: Head, outcome: Outcome, at: datetime
) -> None:
    await deliveries.settle(claim, head, outcome, at, at, {"at": at.isoformat()}, (1000, 60), 100)


def test_the_cli_subscribes_an_endpoint_to_event_types(stack: Endpoints) -> None:
    """`orders webhooks add --event-type …` (repeatable) sets the types; without it, status events only."""
    env = {**os.environ, **stack.environ(), "ORDERS_RELAY_REQUIRE_HTTPS": "false"}
    url = ["--client", unique("cli"), "--url", "http://93.184.215.14/hooks"]

    def add(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "service.cli", "webhooks", "add", *url, *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False)

    both = add("--event-type", "command_rejected", "--event-type", "order_status_changed")
    default = add()
    unknown = add("--event-type", "order_created")

    assert json.loads(both.stdout)["event_types"] == ["order_status_changed", "command_rejected"]
    assert json.loads(default.stdout)["event_types"] == ["order_status_changed"]
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr
