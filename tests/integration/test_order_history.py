"""An order's history: its status events, kept with the order and served in sequence, page by page."""

import json
import os
import subprocess
import sys

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from contracts.commands import CancelOrder
from contracts.statuses import OrderStatus
from service.config import Settings
from service.devstack import Endpoints
from service.store.keys import history_key, order_key
from testkit.api_keys import issue_key
from testkit.factories import prebooking, unique
from testkit.kafka_tap import TopicTap, produce
from tests.integration.observe import Observer

pytestmark = pytest.mark.usefixtures("service", "simulator")


async def _cancelled_order(producer: AIOKafkaProducer, settings: Settings, bus: Observer) -> str:
    """A prebooking taken to Pending, Confirmed and Cancelled: three events."""
    command = prebooking("RES-OK")
    await produce(producer, settings.topic_commands, command, command.order_id)
    await bus.status(command.order_id, OrderStatus.CONFIRMED)
    cancel = CancelOrder(command_id=unique("cmd"), client_id="client-a", order_id=command.order_id)
    await produce(producer, settings.topic_commands, cancel, command.order_id)
    await bus.status(command.order_id, OrderStatus.CANCELLED)
    return command.order_id


async def test_the_history_is_the_published_events_in_sequence_paged(
    api: httpx.AsyncClient, settings: Settings, tap: TopicTap, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """Byte for byte the payloads of `orders.status-changed`; pages follow `next_cursor` to a last page."""
    bus = Observer(tap, settings)
    order_id = await _cancelled_order(producer, settings, bus)
    headers = {"Authorization": f"Bearer {(await issue_key(redis, 'client-a')).token}"}
    url = f"/v1/orders/{order_id}/events"

    first = await api.get(url, params={"limit": 2}, headers=headers)
    second = await api.get(url, params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=headers)
    whole = await api.get(url, headers=headers)

    assert [e["sequence"] for e in first.json()["events"]] == [1, 2]
    assert first.json()["next_cursor"] == "2"
    assert [e["sequence"] for e in second.json()["events"]] == [3]
    assert second.json()["next_cursor"] is None
    published = {
        json.loads(r.value)["event_id"]: r.value
        for r in tap.records[settings.topic_status_changed]
        if json.loads(r.value)["order_id"] == order_id
    }
    served = [json.dumps(e, separators=(",", ":")) for e in whole.json()["events"]]
    assert [e["status"] for e in whole.json()["events"]] == [5, 1, 3]
    assert [json.loads(s)["event_id"] for s in served] == [e.event_id for e in bus.events(order_id)]
    assert whole.content.count(b'"event_id"') == 3
    for event in bus.events(order_id):
        assert published[event.event_id] in whole.content  # the stored bytes, not re-serialised


async def test_the_history_lives_as_long_as_its_order_and_is_only_its_clients(
    api: httpx.AsyncClient, settings: Settings, tap: TopicTap, producer: AIOKafkaProducer, redis: Redis
) -> None:
    """The history expires with the order; another client's order and a missing one get the same 404."""
    order_id = await _cancelled_order(producer, settings, Observer(tap, settings))
    stranger = {"Authorization": f"Bearer {(await issue_key(redis, 'client-b')).token}"}

    foreign = await api.get(f"/v1/orders/{order_id}/events", headers=stranger)
    missing = await api.get(f"/v1/orders/{unique('NONE')}/events", headers=stranger)
    order_ttl = await redis.pttl(order_key("client-a", order_id))
    history_ttl = await redis.pttl(history_key("client-a", order_id))

    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    assert order_ttl > 0 and abs(order_ttl - history_ttl) < 60_000


async def test_operators_read_the_history_with_the_cli(
    settings: Settings, tap: TopicTap, producer: AIOKafkaProducer, stack: Endpoints
) -> None:
    """`orders history` prints one event per line, in sequence; an unknown order is one line and exit 2."""
    order_id = await _cancelled_order(producer, settings, Observer(tap, settings))
    env = {**os.environ, **stack.environ()}

    def history(order: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "service.cli", "history", "--client", "client-a", "--order", order]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=False)

    found, unknown = history(order_id), history(unique("NONE"))

    assert [json.loads(line)["sequence"] for line in found.stdout.splitlines()] == [1, 2, 3]
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1
