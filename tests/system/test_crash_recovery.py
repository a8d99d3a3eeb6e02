"""SIGKILL the order service again and again while thousands of orders are in flight: nothing is lost,
no sequence has a gap, and no effect is applied twice."""

import asyncio
import os
import random
import signal
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from redis.asyncio import Redis

from contracts.commands import CancelOrder, CreatePrebooking, RecordWalkIn
from contracts.events import OrderStatusChanged
from contracts.statuses import OrderStatus
from service.app import service_topics
from service.config import ResourceSimSettings, Settings
from service.devstack import Endpoints
from service.kafka_topics import ensure_topics
from service.resource_sim import build_resource_sim
from service.store.entitlements import EntitlementStore
from service.store.keys import outbox_key
from service.store.orders import OrderStore
from tests.factories import prebooking, unique, walk_in
from tests.integration.conftest import FULL_RESOURCE, isolated_settings, until_assigned
from tests.kafka_tap import TopicTap

pytestmark = pytest.mark.integration

Command = CreatePrebooking | RecordWalkIn | CancelOrder

PREBOOKINGS = 1600
WALK_INS = 400
CANCELLED_WALK_INS = 100
KILLS = 4
GRANTED_UNITS = 1000


@pytest.fixture
async def crash_settings(stack: Endpoints) -> Settings:
    # Restarts take seconds each: no order may time out meanwhile, whatever the shared test settings say.
    overrides = {
        "max_batch": 200,
        "kafka_session_timeout_ms": 3000,
        "kafka_heartbeat_interval_ms": 500,
        "confirmation_timeout_seconds": 600.0,
    }
    settings = isolated_settings(stack, f"crash{uuid.uuid4().hex[:6]}").model_copy(update=overrides)
    await ensure_topics(
        settings.kafka_bootstrap_servers, service_topics(settings), settings.topic_partitions, 1
    )
    return settings


def service_environment(settings: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "REDIS_URL": settings.redis_url,
    }
    for name, value in settings.model_dump().items():
        if name not in ("kafka_bootstrap_servers", "redis_url") and not isinstance(value, dict):
            env[f"ORDERS_{name.upper()}"] = str(value)
    return env


class ServiceProcess:
    """`orders service` as a child process that can be killed outright."""

    def __init__(self, settings: Settings) -> None:
        self._env = service_environment(settings)
        self.process: asyncio.subprocess.Process | None = None
        self.assigned = asyncio.Event()
        self.started = asyncio.Event()

    async def start(self) -> None:
        self.assigned.clear()
        self.started.clear()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service.cli", "service",
            env=self._env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        asyncio.create_task(self._watch(self.process))  # noqa: RUF006 - ends with the process's output

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        assignments = 0
        async for line in process.stderr:
            if b"started successfully" in line:
                self.started.set()  # signal handlers installed: SIGTERM now drains gracefully
            if b"assigned to partitions" in line:
                assignments += 1
                if assignments >= 2:  # commands and replies consumers both consuming
                    self.assigned.set()

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 30)


@pytest.fixture
async def simulator(crash_settings: Settings) -> AsyncIterator[None]:
    sim = build_resource_sim(
        ResourceSimSettings(
            **crash_settings.model_dump(),
            sim_fail_resources=FULL_RESOURCE,
            sim_group=f"{crash_settings.consumer_group}.sim",
        )
    )
    assert isinstance(sim.broker, KafkaBroker)
    await sim.broker.start()
    await until_assigned(sim.broker)
    yield
    await sim.broker.stop()


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("simulator")
async def test_repeated_sigkill_loses_nothing_and_doubles_nothing(crash_settings: Settings) -> None:
    """Every order ends where it should, with events 1..n (deduplicated by event_id), one event per sequence,
    empty outboxes, and entitlement balances that account for each walk-in and refund exactly once."""
    settings = crash_settings
    redis = Redis.from_url(settings.redis_url)
    entitlements = EntitlementStore(redis)
    credential = unique("CARD")
    await entitlements.grant("client-a", credential, GRANTED_UNITS)
    commands, expected = workload(credential)
    tap = TopicTap(settings.kafka_bootstrap_servers, [settings.topic_status_changed])
    await tap.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    service = ServiceProcess(settings)
    try:
        sending = asyncio.create_task(send_paced(producer, settings, commands))
        for _ in range(KILLS):
            await service.start()
            await asyncio.wait_for(service.assigned.wait(), 60)
            await asyncio.sleep(random.uniform(0.2, 1.5))  # let it get part-way through some batches
            await service.kill()
        await service.start()
        await sending

        finals = await tap.wait_for(lambda: final_statuses(tap, settings, expected), timeout=180)
        await asyncio.wait_for(service.started.wait(), 60)
        assert await service.terminate() == 0
    finally:
        await producer.stop()
        await tap.stop()

    assert finals == expected
    events = events_by_order(tap, settings)
    republished = len(tap.records[settings.topic_status_changed]) - sum(len(e) for e in events.values())
    print(f"{len(expected)} orders, {KILLS} kills, {republished} events published more than once")
    for order_id, order_events in events.items():
        sequences = sorted(order_events)
        assert sequences == list(range(1, len(sequences) + 1)), f"{order_id}: gap in {sequences}"
        assert all(len(ids) == 1 for ids in order_events.values()), f"{order_id}: one effect, twice"
    store = OrderStore(redis)
    for order_id, status in list(expected.items())[:: max(1, len(expected) // 200)]:
        stored = await store.get(order_id)
        assert stored is not None and stored.status is status
        assert await redis.hlen(outbox_key(order_id)) == 0
    consumed = WALK_INS - CANCELLED_WALK_INS
    assert await entitlements.balance("client-a", credential) == GRANTED_UNITS - consumed
    await redis.aclose()


def workload(credential: str) -> tuple[list[Command], dict[str, OrderStatus]]:
    """Prebookings (every tenth to a full resource), walk-ins, and staff cancellations of some walk-ins."""
    commands: list[Command] = []
    expected: dict[str, OrderStatus] = {}
    for n in range(PREBOOKINGS):
        full = n % 10 == 0
        command = prebooking(FULL_RESOURCE if full else "RES-OK")
        commands.append(command)
        expected[command.order_id] = OrderStatus.FAILED if full else OrderStatus.CONFIRMED
    for n in range(WALK_INS):
        usage = walk_in(credential=credential)
        commands.append(usage)
        expected[usage.order_id] = OrderStatus.USED
        if n < CANCELLED_WALK_INS:
            commands.append(
                CancelOrder(
                    command_id=unique("cmd"),
                    client_id="client-a",
                    order_id=usage.order_id,
                    initiated_by="RESOURCE_STAFF",
                )
            )
            expected[usage.order_id] = OrderStatus.CANCELLED
    random.shuffle(commands)
    # A cancellation must follow its walk-in on the partition: put each after its usage.
    ordered: list[Command] = []
    cancels = {c.order_id: c for c in commands if isinstance(c, CancelOrder)}
    for queued in commands:
        if not isinstance(queued, CancelOrder):
            ordered.append(queued)
            if queued.order_id in cancels:
                ordered.append(cancels[queued.order_id])
    return ordered, expected


async def send_paced(producer: AIOKafkaProducer, settings: Settings, commands: list[Command]) -> None:
    """Send in small waves over several seconds, so that orders are in flight through every kill."""
    for start in range(0, len(commands), 100):
        wave = commands[start : start + 100]
        futures = [
            await producer.send(
                settings.topic_commands, c.model_dump_json().encode(), key=c.order_id.encode()
            )
            for c in wave
        ]
        await asyncio.gather(*futures)
        await asyncio.sleep(0.3)


def events_by_order(tap: TopicTap, settings: Settings) -> dict[str, dict[int, set[str]]]:
    """order_id → sequence → the distinct event ids published for it."""
    found: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for event in tap.decoded(settings.topic_status_changed, OrderStatusChanged):
        found[event.order_id][event.sequence].add(event.event_id)
    return found


def final_statuses(
    tap: TopicTap, settings: Settings, expected: dict[str, OrderStatus]
) -> dict[str, OrderStatus] | None:
    """Each order's latest status, once every order has reached the status expected of it."""
    latest: dict[str, tuple[int, OrderStatus]] = {}
    for event in tap.decoded(settings.topic_status_changed, OrderStatusChanged):
        if event.sequence >= latest.get(event.order_id, (0, event.status))[0]:
            latest[event.order_id] = (event.sequence, event.status)
    finals = {order_id: status for order_id, (_, status) in latest.items()}
    done = all(finals.get(order_id) is status for order_id, status in expected.items())
    return finals if done else None
