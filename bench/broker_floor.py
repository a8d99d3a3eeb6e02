"""What the broker costs every hop: its round trips when nothing else runs, and its CPU per idle poller.

    make bench-broker_floor

Every hop of the pipeline (and of the bare pipe it is measured against) waits for the broker at least three
times: a fetch that returns the record, the acknowledgement of the produce request that passes it on, and
the offset commit after it. This benchmark measures those waits on a broker with nothing else to do, one
request at a time (`--samples` of each), and the broker's CPU while `--pollers` consumers do nothing but
poll empty partitions with the fetch wait the processes use (`ORDERS_KAFKA_FETCH_MAX_WAIT_MS`), for
`--seconds`. The pipeline benchmark's fixed phase reports the same acknowledgement under load, and the
broker's CPU then: the difference is what sharing the broker (and the two cores) costs each hop.

Then one bare hop under a steady load: a producer offers `--rate` records a second for `--hop-seconds`
across the partitions of a topic that holds `--history` records (one stored batch each, none by default),
and a bare consumer (the processes' fetch wait, nothing else to do) reads them. Each record's lag runs from
its producer's acknowledgement to the poll that returned it. The phase also counts the fetches that passed
a record by: sent more than a millisecond after the record was acknowledged, asking for its partition at
or before its offset, and back without it (a fetch's request is read off aiokafka's fetcher, see
`FetchLog`). A broker that shows an acknowledged record to the next fetch passes none by; the records it
passes by are the tail of every hop's latency, and the embedded broker passes more by the more batches a
partition holds (docs/benchmarks.md).
"""

import asyncio
import bisect
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.consumer.fetcher import Fetcher

from bench.harness import Report, Run, cpu_seconds, paced, parser, percentiles, run
from service.kafka import ensure_topics


async def timed(samples: int, request: Callable[[], Awaitable[object]]) -> list[float]:
    """Milliseconds each of `samples` calls of `request` took, one after another."""
    taken = []
    for _ in range(samples):
        start = time.monotonic()
        await request()
        taken.append((time.monotonic() - start) * 1000)
    return taken


def producer_and_consumer(bench: Run, topic: str, group: str) -> tuple[AIOKafkaProducer, AIOKafkaConsumer]:
    """A producer (acks=all) and a consumer of `topic` from its start, with the processes' fetch wait."""
    bootstrap = bench.settings.kafka_bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # the benchmark's own new topics: every record offered is read
        fetch_max_wait_ms=bench.settings.kafka_fetch_max_wait_ms,
    )
    return producer, consumer


async def round_trips(bench: Run, topic: str, samples: int) -> dict[str, list[float]]:
    """Produce acknowledgements (acks=all, one record each) and offset commits, one at a time."""
    producer, consumer = producer_and_consumer(bench, topic, f"{topic}.group")
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


@dataclass
class _Fetch:
    sent: float
    positions: dict[int, int]
    """The offset asked for, by partition."""
    returned: float = float("inf")


@dataclass
class FetchLog:
    """The fetch requests aiokafka's fetcher sends while `recording()`: when each was sent and came back,
    and the offset it asked for in each partition. It wraps the fetcher's `_proc_fetch_request`, a private
    method (aiokafka 0.14), benchmark-only: the smoke run fails if it stops being called."""

    fetches: list[_Fetch] = field(default_factory=list)
    _sent: list[float] = field(default_factory=list)

    @contextmanager
    def recording(self) -> Iterator["FetchLog"]:
        original = Fetcher._proc_fetch_request

        async def logged(fetcher: Fetcher, assignment: Any, node_id: int, request: Any) -> Any:
            fetch = _Fetch(time.time(), {p: offset for _, parts in request.topics for p, offset, _ in parts})
            self.fetches.append(fetch)
            try:
                return await original(fetcher, assignment, node_id, request)
            finally:
                fetch.returned = time.time()

        Fetcher._proc_fetch_request = logged
        try:
            yield self
        finally:
            Fetcher._proc_fetch_request = original

    def passed_by(self, partition: int, offset: int, acknowledged: float, read: float) -> int:
        """How many fetches came back without the record at `offset` of `partition` though they asked for
        it at or before that offset, sent more than a millisecond after it was `acknowledged`: the fetches
        back before the poll that returned it at `read`, less the last of them, which brought it."""
        if not self._sent:
            self._sent = [fetch.sent for fetch in self.fetches]
        window = self.fetches[  # a fetch sent a second before the acknowledgement was back long before it
            bisect.bisect_left(self._sent, acknowledged - 1.0) : bisect.bisect_right(self._sent, read)
        ]
        asked = [
            fetch
            for fetch in window
            if acknowledged < fetch.returned < read and fetch.positions.get(partition, offset + 1) <= offset
        ]
        if not asked:
            return 0
        brought = max(asked, key=lambda fetch: fetch.returned)
        return sum(1 for fetch in asked if fetch is not brought and fetch.sent > acknowledged + 0.001)


@dataclass
class Hop:
    lags_ms: list[float]
    passed_by: list[int]
    fetches: int


HOP_RECORD_BYTES = 500
"""The size of the steady hop's records (about a resource request); the history's are smaller."""


async def steady_hop(bench: Run, topic: str, rate: float, seconds: float, history: int = 0) -> Hop:
    """One bare hop at `rate` records a second: each record's lag from its acknowledgement to its poll.
    With `history`, the topic first receives that many records, one produce request each (so one stored
    batch each), all read before the hop starts."""
    producer, consumer = producer_and_consumer(bench, topic, f"{topic}.hop")
    total = int(rate * seconds)
    acknowledged: dict[int, tuple[float, int, int]] = {}
    read: dict[int, float] = {}

    async def offer() -> None:
        async for due in paced(total, rate):
            for n in due:
                value = n.to_bytes(4, "big").ljust(HOP_RECORD_BYTES, b"x")
                sent = await producer.send(topic, value, key=uuid.uuid4().bytes)
                sent.add_done_callback(
                    lambda done, n=n: acknowledged.__setitem__(
                        n, (time.time(), done.result().partition, done.result().offset)
                    )
                )

    async def drain() -> None:
        while len(read) < total:
            polled = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in polled.values():
                for record in records:
                    value = record.value or b""
                    if len(value) == HOP_RECORD_BYTES:  # not the history's
                        read[int.from_bytes(value[:4], "big")] = now

    await producer.start()
    await consumer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        for _ in range(0, history, len(partitions)):  # a record per partition at a time: a batch each
            await asyncio.gather(
                *(producer.send_and_wait(topic, b"h" * 100, partition=p) for p in partitions)
            )

        async def past_history() -> None:
            seen = 0
            while not consumer.assignment() or seen < history:
                polled = await consumer.getmany(timeout_ms=100)  # assigned, and past the history
                seen += sum(len(records) for records in polled.values())

        # Bounded: with thousands of batches in one partition, the embedded broker's fetches crawl.
        await asyncio.wait_for(past_history(), 60 + history / 100)
        with FetchLog().recording() as log:
            await asyncio.wait_for(asyncio.gather(offer(), drain()), seconds + 60)
    finally:
        await consumer.stop()
        await producer.stop()
    lags, passed = [], []
    for n, (at, partition, offset) in acknowledged.items():
        lags.append((read[n] - at) * 1000)
        passed.append(log.passed_by(partition, offset, at, read[n]))
    return Hop(lags, passed, len(log.fetches))


def main() -> None:
    options = parser(__doc__ or "")
    options.add_argument("--samples", type=int, default=500, help="round trips of each kind")
    options.add_argument("--pollers", type=int, default=4, help="idle consumers polling at once")
    options.add_argument("--seconds", type=float, default=10.0, help="how long their polling is measured")
    options.add_argument("--rate", type=float, default=1000.0, help="records/s offered in the steady hop")
    options.add_argument("--hop-seconds", type=float, default=10.0, help="length of the steady hop")
    options.add_argument(
        "--history", type=int, default=0, help="records stored before the steady hop, one batch each"
    )
    args = options.parse_args()
    if args.smoke:
        args.samples, args.pollers, args.seconds, args.rate, args.hop_seconds = 50, 2, 2.0, 200.0, 2.0

    async def benchmark(bench: Run) -> Report:
        report = Report(
            "broker_floor",
            {
                "samples": args.samples,
                "pollers": args.pollers,
                "seconds": args.seconds,
                "fetch_max_wait_ms": bench.settings.kafka_fetch_max_wait_ms,
                "partitions": args.partitions,
                "rate": args.rate,
                "hop_seconds": args.hop_seconds,
                "history": args.history,
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
        steady = f"{topic}.hop"
        await ensure_topics(bench.settings.kafka_bootstrap_servers, [steady], args.partitions, 1)
        hop = await steady_hop(bench, steady, args.rate, args.hop_seconds, args.history)
        for point, value in percentiles(hop.lags_ms, (50, 99)).items():
            report.add(f"steady hop: acknowledged → read {point}", value, "ms")
        report.add("steady hop: acknowledged → read max", max(hop.lags_ms), "ms")
        report.add("steady hop: fetches", hop.fetches, "requests")
        late = [n for n in hop.passed_by if n]
        report.add("steady hop: records a fetch passed by", 100 * len(late) / len(hop.passed_by), "%")
        on_time = [lag for lag, n in zip(hop.lags_ms, hop.passed_by, strict=True) if not n]
        report.add("steady hop: p99 of the records none passed by", percentiles(on_time, (99,))["p99"], "ms")
        report.add("steady hop: most fetches that passed one record by", max(hop.passed_by), "fetches")
        return report

    run(benchmark, args)


if __name__ == "__main__":
    main()
