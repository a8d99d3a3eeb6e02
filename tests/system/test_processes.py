"""The `orders` processes run for real: the demo, graceful shutdown, and no stray children."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from redis.asyncio import Redis

from bench.consumer_offsets import GroupOffsets, end_offsets
from bench.harness import settings_environment
from contracts.events import OrderStatusChanged
from service.config import Settings
from service.devstack import Endpoints, free_port, wait_for_port
from service.kafka import ensure_topics, service_topics
from service.store.orders import OrderStore
from testkit.factories import prebooking
from testkit.isolation import isolated_names
from testkit.kafka_tap import TopicTap
from tests.system.processes import ORDERS, children_of, is_alive, live_processes_in_session, read_until
from tests.waiting import eventually

WITHOUT_STACK_ENV = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL")}


def wait_until_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """The PIDs still alive after waiting up to `timeout` seconds for all of them to end."""
    deadline = time.monotonic() + timeout
    while (alive := [pid for pid in pids if is_alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


@pytest.mark.timeout(150)
def test_demo_shows_confirmed_and_failed_orders_and_leaves_no_process_behind() -> None:
    """`orders demo` (what `make demo` runs) exits 0, prints 5 → 1 and 5 → 10, and stops all it started."""
    demo = subprocess.Popen(
        [*ORDERS, "demo", "--orders", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stdout, stderr = demo.communicate(timeout=140)
    output = stdout.decode()

    assert demo.returncode == 0, output + stderr.decode()[-3000:]
    assert "5 Pending   ->  1 Confirmed" in output
    assert "5 Pending   -> 10 Failed" in output
    # The demo led its own session: anything still in it would be a stray broker, Redis or service.
    assert wait_until_gone(live_processes_in_session(demo.pid)) == []


BACKLOG = 4000
BATCH = 25
"""Commands published at once when the service has started, read in batches this small: 160 batches of
several Redis and broker round trips each take seconds whatever the machine, so SIGTERM, sent as soon as
the first status event appears, finds batches in flight and more still unread. (Published before the start,
they would be gone by then: the commands consumer runs while the replies consumer still joins its group.)"""
GRACE_SECONDS = 10.0
EXIT_MARGIN_SECONDS = 5.0
"""Beyond the drain: committing offsets, leaving the groups, flushing the producer, closing Redis."""


@pytest.mark.timeout(180)
async def test_service_drains_and_exits_cleanly_on_sigterm(stack: Endpoints, tmp_path: Path) -> None:
    """SIGTERM mid-backlog: exit 0 within the grace period, and exactly the commands below the committed
    offsets have their orders stored and their status events published (no batch left half done)."""
    run = f"sig{uuid.uuid4().hex[:6]}"
    settings = Settings(**stack.settings(), **isolated_names(run))  # type: ignore[arg-type]
    await ensure_topics(
        settings.kafka_bootstrap_servers, service_topics(settings), settings.topic_partitions, 1
    )
    tap = TopicTap(settings.kafka_bootstrap_servers, [settings.topic_commands, settings.topic_status_changed])
    await tap.start()
    try:
        exit_code, exit_seconds = await run_and_stop_mid_backlog(settings, tap, tmp_path)
        assert exit_code == 0, (tmp_path / "service.log").read_text()[-3000:]
        assert exit_seconds < GRACE_SECONDS + EXIT_MARGIN_SECONDS
        committed = await committed_commands(settings, tap)
        published = await published_orders(settings, tap)
        stored = await stored_orders(settings, tap)
    finally:
        await tap.stop()
    assert 0 < len(committed) < BACKLOG, "SIGTERM must arrive while batches are in flight"
    assert published == committed, "a batch it started ends with its events published and offsets committed"
    assert stored == committed, "no order stored by a batch whose offsets were left uncommitted"


async def publish_backlog(settings: Settings) -> None:
    """`BACKLOG` prebookings on the commands topic, as fast as the producer sends them."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        commands = [prebooking() for _ in range(BACKLOG)]
        sending = [
            await producer.send(
                settings.topic_commands, c.model_dump_json().encode(), key=c.order_id.encode()
            )
            for c in commands
        ]
        await asyncio.gather(*sending)
    finally:
        await producer.stop()


async def run_and_stop_mid_backlog(settings: Settings, tap: TopicTap, workdir: Path) -> tuple[int, float]:
    """Start `orders service`, publish the backlog, SIGTERM the service once its first status event is out;
    (exit code, seconds to exit). The tap has read the whole backlog (with its offsets) on return."""
    metrics_port = free_port()
    env = settings_environment(
        settings,
        ORDERS_METRICS_PORT=str(metrics_port),
        ORDERS_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        ORDERS_MAX_BATCH=str(BATCH),
    )
    log_path = workdir / "service.log"
    with log_path.open("wb") as log:
        service = await asyncio.create_subprocess_exec(
            *ORDERS, "service", stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        # Signal handlers are installed once it says so; before that, SIGTERM would kill it undrained.
        await eventually(lambda: b"started successfully" in log_path.read_bytes(), timeout=60)
        async with httpx.AsyncClient() as client:
            metrics = await client.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        await publish_backlog(settings)
        await tap.wait_for(lambda: tap.records[settings.topic_status_changed], timeout=60)
        service.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        exit_code = await asyncio.wait_for(service.wait(), GRACE_SECONDS + EXIT_MARGIN_SECONDS)
        exit_seconds = time.monotonic() - signalled
        assert "orders_transition_conflicts_total" in metrics.text, "the service serves its metrics"
        await tap.wait_for(lambda: len(tap.records[settings.topic_commands]) >= BACKLOG, timeout=60)
        return exit_code, exit_seconds
    finally:
        if service.returncode is None:
            service.kill()
            await service.wait()


async def committed_commands(settings: Settings, tap: TopicTap) -> set[str]:
    """Order ids of the commands below the commands group's committed offsets."""
    group = GroupOffsets(
        settings.kafka_bootstrap_servers, f"{settings.consumer_group}.commands", [settings.topic_commands]
    )
    await group.start()
    try:
        committed = await group.committed()
    finally:
        await group.stop()
    return {
        record.key.decode()
        for record in tap.records[settings.topic_commands]
        if record.offset < committed.get(TopicPartition(record.topic, record.partition), 0)
    }


async def published_orders(settings: Settings, tap: TopicTap) -> set[str]:
    """Order ids of the backlog with a status event, once the tap has read the topic to its end."""
    topic = settings.topic_status_changed
    ends = await end_offsets(settings.kafka_bootstrap_servers, [topic])

    def read_to_end() -> bool:
        read = {TopicPartition(topic, r.partition): r.offset + 1 for r in tap.records[topic]}
        return all(read.get(partition, 0) >= end for partition, end in ends.items())

    await tap.wait_for(read_to_end)
    # Only the backlog's: the stack's Redis is shared with other tests, whose confirmation deadlines this
    # service may fire onto its own topic.
    backlog = {record.key.decode() for record in tap.records[settings.topic_commands]}
    return {event.order_id for event in tap.decoded(topic, OrderStatusChanged)} & backlog


async def stored_orders(settings: Settings, tap: TopicTap) -> set[str]:
    """Order ids of the backlog that the service stored in Redis."""
    # Order ids are scoped per client: each command names its own.
    owners = {
        record.key.decode(): json.loads(record.value)["client_id"]
        for record in tap.records[settings.topic_commands]
    }
    order_ids = list(owners)
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        store = OrderStore(redis)
        found = set()
        for start in range(0, len(order_ids), 100):  # the client's connection pool is bounded
            chunk = order_ids[start : start + 100]
            orders = await asyncio.gather(*(store.get(owners[order_id], order_id) for order_id in chunk))
            found |= {order_id for order_id, order in zip(chunk, orders, strict=True) if order is not None}
    finally:
        await redis.aclose()
    return found


@pytest.mark.timeout(60)
def test_embedded_stack_dies_with_a_killed_parent() -> None:
    """SIGKILL of the process that started Tansu and Redis takes them down too (no orphaned servers)."""
    script = (
        "from service.devstack import EmbeddedStack\n"
        "import time\n"
        "e = EmbeddedStack().start()\n"
        "print('ready', e.kafka_bootstrap_servers, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=WITHOUT_STACK_ENV,
    )
    try:
        read_until(parent, b"ready", timeout=30)
        children = children_of(parent.pid)
        assert len(children) == 2, "Tansu and redis-server"
        parent.kill()
        parent.wait()
        assert wait_until_gone(children) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.timeout(60)
def test_api_exits_0_on_sigterm(stack: Endpoints) -> None:
    """`orders api` stops on SIGTERM like the other processes and exits 0, not -15 (uvicorn re-raises the
    signal once it has drained)."""
    settings = Settings(**stack.settings(), **isolated_names(f"api{uuid.uuid4().hex[:6]}"))  # type: ignore[arg-type]
    port = free_port()
    api = subprocess.Popen(
        [*ORDERS, "api"],
        env=settings_environment(settings, ORDERS_API_PORT=str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, api, "orders api")
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
        api.send_signal(signal.SIGTERM)
        exit_code = api.wait(timeout=30)
    finally:
        if api.poll() is None:
            api.kill()
            api.wait()
    assert exit_code == 0, api.stderr.read().decode()[-3000:] if api.stderr else ""
