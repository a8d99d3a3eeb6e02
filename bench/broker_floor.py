"""What the broker costs every hop: its round trips when nothing else runs, and its CPU per idle poller.

    make bench-broker_floor

Every hop of the pipeline (and of the bare pipe it is measured against) waits for the broker at least three
times: a fetch that returns the record, the acknowledgement of the produce request that passes it on, and
the offset commit after it. This benchmark measures those waits on a broker with nothing else to do, one
request at a time (`--samples` of each), and the broker's CPU while `--pollers` consumers do nothing but
poll empty partitions with the fetch wait the processes use (`ORDERS_KAFKA_FETCH_MAX_WAIT_MS`), for
`--seconds`. The pipeline benchmark's fixed phase reports the same acknowledgement under load, and the
broker's CPU then: the difference is what sharing the broker (and the two cores) costs each hop.
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.harness import Report, Run, cpu_seconds, parser, percentiles, run
from service.kafka import ensure_topics


async def timed(samples: int, request: Callable[[], Awaitable[object]]) -> list[float]:
    """Milliseconds each of `samples` calls of `request` took, one after another."""
    taken = []
    for _ in range(samples):
        start = time.monotonic()
        await request()
        taken.append((time.monotonic() - start) * 1000)
    return taken


async def round_trips(bench: Run, topic: str, samples: int) -> dict[str, list[float]]:
    """Produce acknowledgements (acks=all, one record each) and offset commits, one at a time."""
    bootstrap = bench.settings.kafka_bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}.group",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=bench.settings.kafka_fetch_max_wait_ms,
    )
    await producer.start()
    await consumer.start()
    try:
        value = b"x" * 500  # about a resource request's size
        acknowledgements = await timed(samples, lambda: producer.send_and_wait(topic, value, key=b"k"))
        await consumer.getmany(timeout_ms=5000)  # joined the group, with a position to commit
        commits = await timed(samples, consumer.commit)
    finally:
        await consumer.stop()
        await producer.stop()
    return {"produce acknowledgement": acknowledgements, "offset commit": commits}


async def polling_cpu(bench: Run, topic: str, pollers: int, seconds: float) -> float:
    """The broker's CPU, in % of a core, while `pollers` consumers poll `topic`'s empty partitions."""
    settings = bench.settings
    consumers = [
        AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=f"{topic}.pollers.{n}",  # a group each: each polls every partition, as a process does
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        )
        for n in range(pollers)
    ]
    stop = asyncio.Event()

    async def poll(consumer: AIOKafkaConsumer) -> None:
        while not stop.is_set():
            await consumer.getmany(timeout_ms=100)

    for consumer in consumers:
        await consumer.start()
        await consumer.getmany(timeout_ms=1000)  # assigned, past the group's join
    polling = [asyncio.create_task(poll(c)) for c in consumers]
    broker = bench.stack.pids()["kafka"]
    try:
        await asyncio.sleep(1.0)  # every poller in its steady loop
        before, start = cpu_seconds(broker), time.monotonic()
        await asyncio.sleep(seconds)
        used = cpu_seconds(broker) - before
        return used / (time.monotonic() - start) * 100
    finally:
        stop.set()
        await asyncio.gather(*polling)
        for consumer in consumers:
            await consumer.stop()


def main() -> None:
    options = parser(__doc__ or "")
    options.add_argument("--samples", type=int, default=500, help="round trips of each kind")
    options.add_argument("--pollers", type=int, default=4, help="idle consumers polling at once")
    options.add_argument("--seconds", type=float, default=10.0, help="how long their polling is measured")
    args = options.parse_args()
    if args.smoke:
        args.samples, args.pollers, args.seconds = 50, 2, 2.0

    async def benchmark(bench: Run) -> Report:
        report = Report(
            "broker_floor",
            {
                "samples": args.samples,
                "pollers": args.pollers,
                "seconds": args.seconds,
                "fetch_max_wait_ms": bench.settings.kafka_fetch_max_wait_ms,
                "partitions": args.partitions,
            },
        )
        if "kafka" not in bench.stack.pids():
            raise SystemExit("measures the embedded broker's CPU: unset KAFKA_BOOTSTRAP_SERVERS")
        topic = f"{bench.settings.topic_commands}.floor-{uuid.uuid4().hex[:4]}"
        await ensure_topics(bench.settings.kafka_bootstrap_servers, [topic], args.partitions, 1)
        for name, taken in (await round_trips(bench, topic, args.samples)).items():
            for point, value in percentiles(taken, (50, 99)).items():
                report.add(f"{name} {point}, idle broker", value, "ms")
        idle = f"{topic}.idle"
        await ensure_topics(bench.settings.kafka_bootstrap_servers, [idle], args.partitions, 1)
        busy = await polling_cpu(bench, idle, args.pollers, args.seconds)
        report.add(f"broker CPU, {args.pollers} idle pollers", busy, "% of a core")
        report.add("broker CPU per idle poller", busy / args.pollers, "% of a core")
        return report

    run(benchmark, args)


if __name__ == "__main__":
    main()
