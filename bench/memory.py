"""Memory benchmark: Redis bytes per stored order, the service's resident memory, and the retention bound.

    make bench-memory                        # 100,000 orders stored
    make bench-memory ARGS="--orders 20000"

Phase 1 stores `--orders` confirmed one-item prebookings through the real service and simulator and reads
Redis's `used_memory` and the service's resident set before and after: bytes per order (state, applied
inputs, command-id claim, client listing entry) and whether the service's memory grows with the orders it
stored (it should not: it keeps no per-order state).

Phase 2 proves the retention policy bounds what is stored: the service runs with a retention of a few
seconds, and orders that fail (the simulator refuses their resource) must leave no key behind once it has
passed, while the confirmed ones, whose service date is ahead, stay.
"""

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from bench.harness import OrdersProcess, Report, Run, parser, progress, run
from bench.pipeline import Observer, commands
from contracts.statuses import OrderStatus
from service.store.keys import command_claim_key, history_key, inputs_key, order_key
from testkit.factories import prebooking

CLIENT = prebooking().client_id
"""The client of every order `bench.pipeline.commands` builds (order ids are scoped per client)."""

REFUSING_RESOURCE = "RES-FULL"
RETENTION_SECONDS = 3


def status_of(wanted: OrderStatus) -> Callable[[bytes], str | None]:
    """An observer's test: the order id of an event that reports `wanted`."""

    def accept(value: bytes) -> str | None:
        event = json.loads(value)
        return event["order_id"] if event.get("status") == wanted else None

    return accept


def resident_bytes(pid: int) -> int:
    """The process's resident set size (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


async def used_memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def send(
    producer: AIOKafkaProducer,
    observer: Observer,
    topic: str,
    batch: list[tuple[str, bytes]],
    description: str,
) -> int:
    """Send `batch` and wait until each order reached the observed status; returns how many did not."""
    before = len(observer.arrived)
    with progress(description, len(batch)) as advance:
        sent = [await producer.send(topic, value, key=order_id.encode()) for order_id, value in batch]
        await asyncio.gather(*sent)
        await observer.until(before + len(batch), advance, within=900)
    return sum(1 for order_id, _ in batch if order_id not in observer.arrived)


async def benchmark(bench: Run, orders: int, refused: int) -> Report:
    settings = bench.settings
    report = Report(
        "memory", {"orders": orders, "refused_orders": refused, "retention_seconds": RETENTION_SECONDS}
    )
    env = bench.environ(
        ORDERS_SIM_FAIL_RESOURCES=REFUSING_RESOURCE,
        ORDERS_ORDER_RETENTION_SECONDS=str(RETENTION_SECONDS),
        ORDERS_IDEMPOTENCY_RETENTION_SECONDS=str(RETENTION_SECONDS),
        ORDERS_TOPIC_RETENTION_MS=str(RETENTION_SECONDS * 1000),
        ORDERS_WALK_IN_CANCELLATION_WINDOW_SECONDS="1",
    )
    service = OrdersProcess("service", env, bench.workdir / "service.log", consumers=2)
    simulator = OrdersProcess("resource-sim", env, bench.workdir / "sim.log")
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    bootstrap, fetch_wait = settings.kafka_bootstrap_servers, settings.kafka_fetch_max_wait_ms
    confirmed = Observer(
        bootstrap, settings.topic_status_changed, status_of(OrderStatus.CONFIRMED), fetch_wait
    )
    failed = Observer(bootstrap, settings.topic_status_changed, status_of(OrderStatus.FAILED), fetch_wait)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    try:
        for process in (service, simulator):
            await process.start()
        await asyncio.gather(service.wait_ready(), simulator.wait_ready())
        for started in (confirmed.start(), failed.start(), producer.start()):
            await started
        await send(producer, confirmed, settings.topic_commands, commands(200), "warm-up")

        redis_before, rss_before = await used_memory(redis), resident_bytes(service.pid)
        stored = commands(orders)
        missing = await send(producer, confirmed, settings.topic_commands, stored, "storing orders")
        redis_after, rss_after = await used_memory(redis), resident_bytes(service.pid)
        report.check("every stored order confirmed", missing == 0, f"{missing:,} missing")
        per_order = (redis_after - redis_before) / orders
        report.add("Redis memory per stored order", per_order, "bytes")
        report.add(f"Redis memory for {orders:,} orders", (redis_after - redis_before) / 2**20, "MiB")
        report.add("service resident memory before", rss_before / 2**20, "MiB")
        report.add(f"service resident memory with {orders:,} orders stored", rss_after / 2**20, "MiB")
        order_id = stored[0][0]
        for name, key in (
            ("order state", order_key(CLIENT, order_id)),
            ("applied inputs", inputs_key(CLIENT, order_id)),
            ("history (its status events)", history_key(CLIENT, order_id)),
        ):
            report.add(f"  of which {name} (one order)", await redis.memory_usage(key) or 0, "bytes")
        report.add("Redis memory at 30 days' retention and 1M orders a day", per_order * 30e6 / 2**30, "GiB")

        # Phase 2: short-lived failures leave nothing behind once the retention passed.
        refusals = [prebooking(REFUSING_RESOURCE) for _ in range(refused)]
        batch = [(c.order_id, c.model_dump_json().encode()) for c in refusals]
        missing = await send(producer, failed, settings.topic_commands, batch, "refused orders")
        report.check("every refused order failed", missing == 0, f"{missing:,} missing")
        keys = [
            k
            for c in refusals
            for k in (order_key(c.client_id, c.order_id), inputs_key(c.client_id, c.order_id))
        ]
        keys += [command_claim_key(c.client_id, c.command_id) for c in refusals]
        deadline = time.monotonic() + RETENTION_SECONDS + 30
        # Redis expires keys on its own clock: there is no event to await, only the keys to look at.
        while (left := await redis.exists(*keys)) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        report.check("failed orders forgotten after the retention", left == 0, f"{left:,} keys left")
        kept = await redis.exists(*(order_key(CLIENT, o) for o, _ in stored[:1000]))
        report.check(
            "confirmed orders kept until their service date",
            kept == min(1000, orders),
            f"{kept:,} of 1,000 sampled",
        )
    finally:
        await producer.stop()
        await confirmed.stop()
        await failed.stop()
        for process in (service, simulator):
            if process.process is not None:
                await process.stop()
        await redis.aclose()
    return report


def main() -> None:
    options = parser(__doc__ or "")
    options.add_argument("--orders", type=int, default=100_000, help="confirmed orders to store")
    options.add_argument("--refused", type=int, default=2_000, help="orders that fail, then expire")
    args = options.parse_args()
    if args.smoke:
        args.orders, args.refused = 1_000, 200

    async def measured(bench: Run) -> Report:
        return await benchmark(bench, args.orders, args.refused)

    run(measured, args)


if __name__ == "__main__":
    main()
