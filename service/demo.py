"""`orders dev` and `orders demo`: the whole system on the embedded stack, as one process tree."""

import asyncio
import contextlib
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.base import Passenger
from contracts.commands import CreatePrebooking, PrebookingItem
from contracts.events import OrderStatusChanged
from contracts.statuses import OrderStatus, ProductType
from service.config import Settings
from service.devstack import EmbeddedStack, Endpoints, exit_on_sigterm, spawn, stop_process
from service.kafka import ensure_topics, service_topics

FAILING_RESOURCE = "LHR-T3-FASTTRACK-FULL"
DEMO_TIMEOUT_SECONDS = 60.0


@contextlib.contextmanager
def dev_processes(log_dir: Path | None, sim_latency: float = 0.2) -> Iterator[Endpoints]:
    """The embedded stack plus an order service, a resource simulator and a webhook relay (loopback
    endpoints allowed, for local receivers), stopped on the way out."""
    stack = EmbeddedStack()
    endpoints = stack.start()
    env = {**endpoints.environ(), "ORDERS_SIM_FAIL_RESOURCES": FAILING_RESOURCE}
    env["ORDERS_SIM_LATENCY_SECONDS"] = str(sim_latency)
    env |= {"ORDERS_RELAY_REQUIRE_HTTPS": "false", "ORDERS_RELAY_ALLOWED_NETWORKS": '["127.0.0.0/8"]'}
    children = []
    try:
        for name in ("service", "resource-sim", "relay"):
            log_path = log_dir / f"{name}.log" if log_dir else None
            children.append(spawn([sys.executable, "-m", "service.cli", name], env=env, log_path=log_path))
        yield endpoints
    finally:
        codes = [stop_process(child) for child in children]
        stack.stop()
        if any(code not in (0, -signal.SIGTERM) for code in codes):
            print(f"a child process exited with {codes}", file=sys.stderr)


def run_dev() -> int:
    """Run everything until SIGINT or SIGTERM; print how to reach it."""
    exit_on_sigterm()
    with dev_processes(log_dir=None) as endpoints:
        print("embedded stack running; set these to talk to it:")
        for name, value in endpoints.environ().items():
            print(f"  export {name}={value}")
        print("press Ctrl-C to stop")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


def run_demo(orders: int) -> int:
    """Send `orders` prebookings (every third to a resource that is full) and print their status changes."""
    exit_on_sigterm()
    log_dir = Path(f"/tmp/orders-demo-{uuid.uuid4().hex[:8]}")
    log_dir.mkdir(parents=True)
    with dev_processes(log_dir) as endpoints:
        ok = asyncio.run(_drive(endpoints, orders))
    if not ok:
        print(f"demo failed; process logs are in {log_dir}", file=sys.stderr)
        return 1
    print("demo finished: every order reached its final status; everything is shut down.")
    return 0


def demo_orders(count: int, run_id: str) -> list[CreatePrebooking]:
    """`count` prebookings; every third one asks for a resource the simulator reports as full."""
    service_date = date.today() + timedelta(days=7)
    return [
        CreatePrebooking(
            command_id=f"demo-{run_id}-{n}",
            client_id="demo-client",
            order_id=f"ORD-{run_id}-{n}",
            items=[
                PrebookingItem(
                    resource_id=FAILING_RESOURCE if n % 3 == 0 else "LHR-T5-FASTTRACK",
                    product_type=ProductType.FAST_TRACK,
                    service_date=service_date,
                    passengers=[Passenger(passenger_id="PAX-1", name=f"Passenger {n}")],
                )
            ],
        )
        for n in range(1, count + 1)
    ]


async def _drive(endpoints: Endpoints, count: int) -> bool:
    settings = Settings(kafka_bootstrap_servers=endpoints.kafka_bootstrap_servers)
    await ensure_topics(
        endpoints.kafka_bootstrap_servers, service_topics(settings), settings.topic_partitions, 1
    )
    run_id = uuid.uuid4().hex[:6]
    commands = demo_orders(count, run_id)
    expected = {
        c.order_id: OrderStatus.FAILED if n % 3 == 0 else OrderStatus.CONFIRMED
        for n, c in enumerate(commands, start=1)
    }
    consumer = AIOKafkaConsumer(
        settings.topic_status_changed,
        bootstrap_servers=endpoints.kafka_bootstrap_servers,
        group_id=f"demo-{run_id}",
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=endpoints.kafka_bootstrap_servers, acks="all")
    await consumer.start()
    await producer.start()
    try:
        print(f"sending {count} prebookings (every third to {FAILING_RESOURCE}, which is full)")
        for command in commands:
            await producer.send_and_wait(
                settings.topic_commands, command.model_dump_json().encode(), key=command.order_id.encode()
            )
        return await _print_until_final(consumer, expected)
    finally:
        await producer.stop()
        await consumer.stop()


async def _print_until_final(consumer: AIOKafkaConsumer, expected: dict[str, OrderStatus]) -> bool:
    final: dict[str, OrderStatus] = {}
    deadline = time.monotonic() + DEMO_TIMEOUT_SECONDS
    while len(final) < len(expected) and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            for record in records:
                event = OrderStatusChanged.model_validate_json(record.value)
                if event.order_id not in expected:
                    continue
                before = (
                    f"{event.previous_status.value:>2} {event.previous_status.label:<9}"
                    if event.previous_status
                    else " " * 12
                )
                reason = f"  ({event.reason})" if event.reason else ""
                after = f"{event.status.value:>2} {event.status_name}"
                print(f"{event.order_id:<16} #{event.sequence}  {before} -> {after}{reason}")
                if event.status in (OrderStatus.CONFIRMED, OrderStatus.FAILED):
                    final[event.order_id] = event.status
    wrong = {o: s for o, s in final.items() if expected[o] is not s}
    missing = set(expected) - set(final)
    if wrong or missing:
        print(f"unexpected final statuses: {wrong}; no final status for: {sorted(missing)}", file=sys.stderr)
        return False
    return True
