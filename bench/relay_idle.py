"""Webhook relay at rest: its CPU with many registered endpoints and no traffic, against a few endpoints.

    make bench-relay_idle                 # 10 endpoints, then 10,000, 60 s each
    make bench-relay_idle ARGS=--smoke    # 10, then 300, 5 s each (CI)

For each size, `orders relay` runs as a child process with that many endpoints registered (16 per client, as
the per-client bound allows) and nothing queued. After a warm-up (its start, its first sweep), its CPU is
measured over `--seconds`: the delivery loop's rounds, the sweeps over every endpoint
(`ORDERS_RELAY_SWEEP_SECONDS`), and the consumers' idle polling. Then one event is published for one of the
endpoints, and must arrive at the receiver behind it.

Target: idle CPU with the many endpoints within 3 percentage points of idle with the few (the rounds read
what is due, not what is registered; see docs/webhooks.md, How the relay works). Checks: the relay exits
cleanly, and the event published at each size is delivered.
"""

import argparse
import asyncio
import time
from datetime import UTC, datetime
from functools import partial

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from bench.harness import OrdersProcess, Report, Run, parser, run
from contracts.events import OrderStatusChanged, OrderView
from contracts.statuses import OneOrderStatus, OrderStatus, OrderType
from service.store.webhook_endpoints import Endpoint, EndpointStore
from testkit.webhook_receiver import WebhookReceiver

TARGET_EXTRA_POINTS = 3.0
ENDPOINTS_PER_CLIENT = 16


async def register(redis: Redis, total: int, url: str, prefix: str) -> list[Endpoint]:
    """`total` endpoints, 16 per client, all pointing at `url`."""
    store = EndpointStore(redis)
    created: list[Endpoint] = []
    for start in range(0, total, 50):  # 50 at once: within the Redis client's connection pool
        batch = range(start, min(total, start + 50))
        created += await asyncio.gather(
            *(store.create(f"{prefix}-{n // ENDPOINTS_PER_CLIENT}", url, datetime.now(UTC)) for n in batch)
        )
    return created


def pending_event(order_id: str, client_id: str) -> OrderStatusChanged:
    """An order's first status event."""
    return OrderStatusChanged(
        event_id=f"{order_id}-1",
        order_id=order_id,
        client_id=client_id,
        order_type=OrderType.PREBOOKING,
        sequence=1,
        status=OrderStatus.PENDING,
        status_name=OrderStatus.PENDING.label,
        previous_status=None,
        reason=None,
        occurred_at=datetime.now(UTC),
        order=OrderView(status=OneOrderStatus.OPENED, items=[]),
    )


async def idle_cpu(
    run_: Run, args: argparse.Namespace, report: Report, endpoints: list[Endpoint], receiver: WebhookReceiver
) -> float:
    """The relay's CPU share (% of one core) at rest with `endpoints` registered; checks one delivery."""
    size = f"{len(endpoints):,} endpoints"
    relay = OrdersProcess("relay", run_.environ(), run_.workdir / f"relay-{len(endpoints)}.log")
    producer = AIOKafkaProducer(bootstrap_servers=run_.settings.kafka_bootstrap_servers, acks="all")
    await relay.start()
    await producer.start()
    try:
        await relay.wait_ready()
        await asyncio.sleep(args.warmup)
        cpu_before, wall_before = relay.cpu_seconds(), time.monotonic()
        await asyncio.sleep(args.seconds)
        share = (relay.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before) * 100
        event = pending_event(f"ORD-IDLE-{len(endpoints)}", endpoints[-1].client_id)
        topic = run_.settings.topic_status_changed
        await producer.send_and_wait(topic, event.model_dump_json().encode(), key=event.order_id.encode())
        try:
            await receiver.wait_for(lambda: receiver.delivered(event.event_id), timeout=30)
            delivered = True
        except TimeoutError:
            delivered = False
        report.check(f"{size}: an event published at rest is delivered", delivered)
    finally:
        await producer.stop()
        exit_code = await relay.stop()
    report.check(f"{size}: relay exited cleanly on SIGTERM", exit_code == 0, f"exit code {exit_code}")
    return share


async def benchmark(run_: Run, args: argparse.Namespace) -> Report:
    report = Report(
        "relay_idle",
        {
            "few": args.few,
            "many": args.many,
            "seconds": args.seconds,
            "sweep": run_.settings.relay_sweep_seconds,
        },
    )
    redis = Redis.from_url(run_.settings.redis_url.get_secret_value())
    receiver = WebhookReceiver()
    await receiver.start()
    try:
        few = await register(redis, args.few, receiver.url, "idle-few")
        few_cpu = await idle_cpu(run_, args, report, few, receiver)
        many = few + await register(redis, args.many - args.few, receiver.url, "idle-many")
        many_cpu = await idle_cpu(run_, args, report, many, receiver)
    finally:
        await receiver.stop()
        await redis.aclose()
    report.add(f"relay idle CPU, {args.few:,} endpoints", few_cpu, "% of a core")
    report.add(f"relay idle CPU, {args.many:,} endpoints", many_cpu, "% of a core")
    extra = many_cpu - few_cpu
    report.add(
        "extra idle CPU of the many",
        extra,
        "points",
        target=f"< {TARGET_EXTRA_POINTS:.0f}",
        met=extra < TARGET_EXTRA_POINTS,
    )
    return report


def main() -> None:
    found = parser(__doc__.split("\n", 1)[0])
    found.add_argument("--few", type=int, default=10, help="endpoints of the first measurement")
    found.add_argument("--many", type=int, default=10_000, help="endpoints of the second measurement")
    found.add_argument("--seconds", type=float, default=60.0, help="length of each measurement")
    found.add_argument("--warmup", type=float, default=5.0, help="seconds after the relay is ready")
    args = found.parse_args()
    if args.smoke:
        args.many, args.seconds, args.warmup = 300, 5.0, 1.0
    run(
        partial(benchmark, args=args),
        args,
        relay_require_https=False,
        relay_allowed_networks=["127.0.0.0/8"],
    )


if __name__ == "__main__":
    main()
