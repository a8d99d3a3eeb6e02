"""Order pipeline benchmark: prebookings created → Confirmed events observed, against a raw aiokafka baseline.

    make bench-pipeline                      # 20,000 orders at saturation, 1,000/s offered for 10 s
    make bench-pipeline ARGS="--orders 50000 --services 2"

The service (`orders service`, `--services` instances in one consumer group) and the resource simulator
(`orders resource-sim`, answering at once) run as processes; this process publishes one-item prebookings
and reads the status-changed topic. Latency is measured from the moment a command is handed to the producer
to the moment its Confirmed event is read here, so it includes both brokers hops of each message.

The baseline, in the same run: `bench.kafka_pipe` processes in the same places (one as the service, one as
the simulator) forward the same command bytes through the same four hops (commands → requests → replies →
events), with no logic and no Redis: at the same fixed rate (the latency four hops cost on this stack),
then flat out.
"""

import asyncio
import contextlib
import itertools
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.consumer_offsets import partitions_of
from bench.harness import (
    RESULTS_DIR,
    OrdersProcess,
    Report,
    Run,
    console,
    cpu_seconds,
    paced,
    parser,
    percentiles,
    progress,
    run,
)
from bench.stall import trace_orders, write_stall_report
from service.kafka import ensure_topics
from testkit.factories import prebooking

CONFIRMED = 1
WARM_UP_ORDERS = 300
# The targets of issue 16 (docs/benchmarks.md): figures to report against, not verdicts.
TARGET_THROUGHPUT = 2_000.0
TARGET_RATIO = 0.20
TARGET_P99_MS = {400.0: 50.0, 1000.0: 100.0}
"""p99 command → Confirmed by offered rate (orders/s)."""
TARGET_SERVICE_CPU_MS = 0.30
TARGET_SERVICE_FORWARDERS = 6.0
"""The same target in the same run's terms: the issue's own run measured 0.05 ms per order for the bare
forwarder in the service's place, so 0.30 ms is six of those (the figure the host's speed does not move)."""
TARGET_SIMULATOR_CPU_MS = 0.05
PHASE_LIMIT_SECONDS = 600.0
GAP_RETRIES = 100
"""Reads of a gap in a partition's offsets before the observer takes it as real (about a second)."""
STALL_SECONDS = 30.0
"""How long a phase may go without a send, an acknowledgement or an arrival before the load generator's state
is written down (`watch_phase`) and the run fails."""
HOPS = ("command → request", "request → reply", "reply → Confirmed")
"""The hops `--hops` times: through the service, the simulator, the service again (the last one includes the
benchmark's own read of the event). In the baseline, the forwarders in those places."""


@dataclass
class Observer:
    """Reads a topic from its start and records when each awaited key's record of interest arrived."""

    bootstrap: str
    topic: str
    accept: Callable[[bytes], str | None]
    """The order id a record completes, or None if the record is not the one awaited."""
    fetch_max_wait_ms: int
    arrived: dict[str, float] = field(default_factory=dict)
    gaps: int = 0
    """Times a fetch skipped offsets that a later one returned (see `_read`)."""
    _next: dict[TopicPartition, int] = field(default_factory=dict)
    _retries: dict[tuple[TopicPartition, int], int] = field(default_factory=dict)
    _awaited: int = 0
    _reached: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        await self._consumer.start()
        partitions = await partitions_of(self._consumer, [self.topic])
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        """Record arrivals, and read again from any gap in a partition's offsets. The embedded broker advances
        a partition's high watermark before it stores the batch (tansu-storage `dynostore.rs`, `produce`),
        so a fetch while two producers write one partition can return the later batch without the earlier
        one, and the consumer's position passes it by (no gap is legitimate on these topics: nothing is
        compacted or transactional). Up to `GAP_RETRIES` reads a gap."""
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=100, max_records=2000)
            now = time.monotonic()
            for tp, records in batches.items():
                for record in records:
                    expected = self._next.get(tp, record.offset)
                    if record.offset > expected and self._retry(tp, expected):
                        self._consumer.seek(tp, expected)  # the rest of the batch is read again after it
                        break
                    self._next[tp] = record.offset + 1
                    key = self.accept(record.value)
                    if key is not None:
                        self.arrived.setdefault(key, now)
            if len(self.arrived) >= self._awaited:
                self._reached.set()

    def _retry(self, tp: TopicPartition, offset: int) -> bool:
        """Whether to read the gap at `offset` again (counted once per gap)."""
        tries = self._retries.get((tp, offset), 0)
        if tries == 0:
            self.gaps += 1
        self._retries[(tp, offset)] = tries + 1
        return tries < GAP_RETRIES

    async def until(self, count: int, advance: Callable[[int], None], within: float) -> None:
        """Wait until `count` keys have arrived in all (or `within` seconds passed), advancing a progress
        bar as they do."""
        self._awaited = count
        self._reached.clear()
        shown = len(self.arrived)
        deadline = time.monotonic() + within
        while len(self.arrived) < count and time.monotonic() < deadline:
            if self._task is not None and self._task.done():
                self._task.result()  # the reader failed: its error, now, not a phase limit later
                raise RuntimeError(f"the observer of {self.topic} stopped reading")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reached.wait(), 0.25)
            advance(len(self.arrived) - shown)
            shown = len(self.arrived)

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        return self._consumer

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


class _Observed(msgspec.Struct):
    """The two fields the observer reads of a record (msgspec skips the rest): both the pipeline's and the
    baseline's observers parse this way, so that the load generator costs each run the same."""

    order_id: str
    status: int | None = None


_OBSERVED = msgspec.json.Decoder(_Observed)


def confirmed_order(value: bytes) -> str | None:
    event = _OBSERVED.decode(value)
    return event.order_id if event.status == CONFIRMED else None


def forwarded_order(value: bytes) -> str | None:
    return _OBSERVED.decode(value).order_id


def commands(count: int) -> list[tuple[str, bytes]]:
    """`count` one-item prebookings as (order_id, bytes), serialised before any clock starts."""
    built = (prebooking() for _ in range(count))
    return [(c.order_id, c.model_dump_json().encode()) for c in built]


async def send_all(
    producer: AIOKafkaProducer, topic: str, batch: Sequence[tuple[str, bytes]], sent: "Sent"
) -> None:
    """Send as fast as the producer takes them; wait for every acknowledgement."""
    acks = []
    for order_id, value in batch:
        acks.append(sent.acknowledged(order_id, await producer.send(topic, value, key=order_id.encode())))
    await asyncio.gather(*acks)


async def send_at_rate(
    producer: AIOKafkaProducer,
    topic: str,
    batch: Sequence[tuple[str, bytes]],
    rate: float,
    sent: "Sent",
) -> None:
    """Send `rate` messages per second, catching up after any hiccup rather than drifting."""
    acks = []
    async for due in paced(len(batch), rate):
        for order_id, value in batch[due.start : due.stop]:
            acks.append(sent.acknowledged(order_id, await producer.send(topic, value, key=order_id.encode())))
    await asyncio.gather(*acks)


async def watch_phase(
    done: "asyncio.Future[Any]",
    batch: Sequence[tuple[str, bytes]],
    sent: "Sent",
    observer: Observer,
    producer: AIOKafkaProducer,
    trace: Sequence[str],
) -> Path | None:
    """Until the phase is `done`: if `STALL_SECONDS` pass without a send made, acknowledged or arrived, write
    what the load generator's clients and tasks are doing (`bench.stall`), once, with every record of the
    first orders missing on the `trace` topics; returns where."""
    last = None
    while True:
        finished, _ = await asyncio.wait({done}, timeout=STALL_SECONDS)
        if finished:
            return None
        seen = (len(sent.at), len(sent.acknowledgement_ms), len(observer.arrived))
        if seen == last:
            break
        last = seen
    path = RESULTS_DIR / f"pipeline-stall-{time.strftime('%Y%m%dT%H%M%S')}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    consumers = {"observer": observer.consumer} if observer.consumer is not None else {}
    sends, acknowledged, arrived = seen
    missing = [order_id for order_id, _ in batch if order_id not in observer.arrived]
    header = [
        f"{STALL_SECONDS:g} s without progress: {sends} sent, {acknowledged} acknowledged, {arrived} arrived",
        f"orders of the phase not arrived: {len(missing)}, the first {missing[:10]}",
        f"the records of the first {len(missing[:5])} on {list(trace)}:",
        *await trace_orders(observer.bootstrap, trace, missing[:5]),
    ]
    write_stall_report(path, {"commands": producer}, consumers, header)
    console.print(f"[red]{header[0]}: {path}")
    return path


@dataclass
class Sent:
    """When each command was handed to the producer, and how long the broker took to acknowledge it: the
    broker's round trip under the phase's load, which every hop of the pipe waits for as well."""

    at: dict[str, float] = field(default_factory=dict)
    acknowledgement_ms: list[float] = field(default_factory=list)

    def acknowledged(self, order_id: str, ack: "asyncio.Future[Any]") -> "asyncio.Future[Any]":
        """Record `order_id` as sent now, and the time to `ack` once it comes."""
        self.at[order_id] = sent_at = time.monotonic()
        ack.add_done_callback(lambda _: self.acknowledgement_ms.append((time.monotonic() - sent_at) * 1000))
        return ack


@dataclass
class Phase:
    """The figures of one measured phase."""

    orders: int
    seconds: float
    latencies_ms: list[float]
    missing: int
    """Orders that did not complete within the phase's time limit."""
    acknowledgement_ms: list[float] = field(default_factory=list)
    """The broker's time to acknowledge each command sent (see `Sent`)."""
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    """CPU time each process used during the phase (the service's per order is the figure to optimise)."""
    hop_latencies_ms: list[list[float]] = field(default_factory=list)
    """Each hop's latency of each order, in hop order, when the phase observed the topics in between."""
    gaps: int = 0
    """Gaps in the observed topic's offsets that the observer read again (`Observer._read`)."""

    @property
    def throughput(self) -> float:
        return self.orders / self.seconds


async def measure(
    producer: AIOKafkaProducer,
    observer: Observer,
    topic: str,
    batch: Sequence[tuple[str, bytes]],
    description: str,
    processes: dict[str, int],
    rate: float | None = None,
    waypoints: Sequence[Observer] = (),
    trace: Sequence[str] = (),
) -> Phase:
    """Send `batch` (at `rate`, or flat out) and wait for every order to complete; `processes` (name → pid)
    are the ones whose CPU time is measured. `waypoints` observe the topics in between, in hop order (one
    record of each order on each), for each hop's latency. `trace`: the topics a stall report follows the
    missing orders through (default: the one sent to and the one observed)."""
    sent = Sent()
    cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    before, gaps = len(observer.arrived), observer.gaps
    passed = [len(waypoint.arrived) for waypoint in waypoints]
    start = time.monotonic()
    with progress(description, len(batch)) as advance:
        sending = (
            send_all(producer, topic, batch, sent)
            if rate is None
            else send_at_rate(producer, topic, batch, rate, sent)
        )
        both = asyncio.gather(
            asyncio.wait_for(sending, PHASE_LIMIT_SECONDS),
            observer.until(before + len(batch), advance, PHASE_LIMIT_SECONDS),
        )
        trace = trace or (topic, observer.topic)
        watchdog = asyncio.create_task(watch_phase(both, batch, sent, observer, producer, trace))
        try:
            either: set[asyncio.Future[Any]] = {both, watchdog}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if watchdog.done() and (report := watchdog.result()) is not None:
                both.cancel()
                await asyncio.wait({both})
                if not both.cancelled():
                    both.exception()  # retrieved: the stall is the error to report
                raise RuntimeError(f"{description}: no progress for {STALL_SECONDS:g} s (see {report})")
            await both
        except TimeoutError:
            limit = PHASE_LIMIT_SECONDS
            raise RuntimeError(f"{description}: sends not acknowledged within {limit:g} s") from None
        finally:
            watchdog.cancel()
    arrived = [(o, observer.arrived[o]) for o, _ in batch if o in observer.arrived]
    last = max((at for _, at in arrived), default=time.monotonic())
    latencies = [(at - sent.at[o]) * 1000 for o, at in arrived]
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in processes.items()}
    missing = len(batch) - len(arrived)
    for waypoint, count in zip(waypoints, passed, strict=True):  # each had its records before the last hop
        await waypoint.until(count + len(batch), lambda _: None, within=10.0)
    hops = hop_latencies(batch, [sent.at, *(waypoint.arrived for waypoint in waypoints), observer.arrived])
    gaps = observer.gaps - gaps
    return Phase(len(batch), last - start, latencies, missing, sent.acknowledgement_ms, cpu, hops, gaps)


def hop_latencies(
    batch: Sequence[tuple[str, bytes]], stages: Sequence[dict[str, float]]
) -> list[list[float]]:
    """Each hop's latency (ms) of each order that reached both its ends, from when each order was seen at
    each stage: sent, each waypoint, observed. None without waypoints: the one "hop" would be the whole
    pipe."""
    if len(stages) < 3:
        return []
    return [
        [(later[o] - earlier[o]) * 1000 for o, _ in batch if o in earlier and o in later]
        for earlier, later in itertools.pairwise(stages)
    ]


async def pipeline(
    bench: Run, orders: int, rate: float, seconds: float, services: int, timed_hops: bool = False
) -> dict[str, Phase]:
    """Warm up, then the fixed-rate phase, then saturation, through the real service; with `timed_hops`,
    the fixed phase also times each hop (`HOPS`)."""
    settings = bench.settings
    between = (settings.topic_resource_requests, settings.topic_resource_replies) if timed_hops else ()
    waypoints = [Observer(settings.kafka_bootstrap_servers, t, forwarded_order, 5) for t in between]
    processes = [
        OrdersProcess("service", bench.environ(), bench.workdir / f"service-{n}.log", consumers=2)
        for n in range(services)
    ]
    processes.append(OrdersProcess("resource-sim", bench.environ(), bench.workdir / "sim.log"))
    observer = Observer(
        settings.kafka_bootstrap_servers,
        settings.topic_status_changed,
        confirmed_order,
        settings.kafka_fetch_max_wait_ms,
    )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=1)
    try:
        for process in processes:
            await process.start()
        await asyncio.gather(*(p.wait_ready() for p in processes))
        for started in (observer, *waypoints):
            await started.start()
        await producer.start()
        fixed = commands(int(rate * seconds))
        flat_out = commands(orders)
        topic = settings.topic_commands
        measured = {p.name: p.pid for p in processes} | bench.stack.pids() | {"benchmark": os.getpid()}
        trail = (topic, settings.topic_resource_requests, settings.topic_resource_replies, observer.topic)
        await measure(producer, observer, topic, commands(WARM_UP_ORDERS), "warm-up", measured, trace=trail)
        phases = {
            "fixed": await measure(
                producer, observer, topic, fixed, f"{rate:g}/s offered", measured, rate, waypoints, trail
            ),
        }
        for stopped in waypoints:  # saturation runs without them (and their polling of the broker)
            await stopped.stop()
        phases["saturation"] = await measure(
            producer, observer, topic, flat_out, "saturation", measured, trace=trail
        )
    finally:
        await producer.stop()
        for stopped in (observer, *waypoints):
            await stopped.stop()
        for process in processes:
            if process.process is not None:
                await process.stop()
    return phases


async def baseline(
    bench: Run, orders: int, rate: float, seconds: float, timed_hops: bool = False
) -> dict[str, Phase]:
    """The same command bytes through the same four hops, forwarded by bare aiokafka processes: at the
    pipeline's fixed rate (the latency floor of four hops on this stack; with `timed_hops`, each hop
    timed), then flat out."""
    bootstrap = bench.settings.kafka_bootstrap_servers
    base = f"{bench.settings.topic_commands}.baseline-{uuid.uuid4().hex[:4]}"
    topics = [f"{base}.{hop}" for hop in ("commands", "requests", "replies", "events")]
    await ensure_topics(bootstrap, topics, bench.settings.topic_partitions, 1)
    as_service = [f"{topics[0]}:{topics[1]}", f"{topics[2]}:{topics[3]}"]
    as_simulator = [f"{topics[1]}:{topics[2]}"]
    processes = [
        OrdersProcess("baseline", bench.environ(), bench.workdir / f"baseline-{n}.log", consumers=len(hops))
        for n, hops in enumerate((as_service, as_simulator))
    ]
    settings = bench.settings
    # Each forwarder with the fetch wait of the process whose place it takes.
    waits = (
        settings.kafka_fetch_max_wait_ms,
        settings.sim_fetch_max_wait_ms or settings.kafka_fetch_max_wait_ms,
    )
    for process, hops, wait in zip(processes, (as_service, as_simulator), waits, strict=True):
        process.argv = ["bench.kafka_pipe", bootstrap, f"{base}.group", *hops]
        process.argv += ["--fetch-max-wait-ms", str(wait)]
    observer = Observer(bootstrap, topics[3], forwarded_order, bench.settings.kafka_fetch_max_wait_ms)
    waypoints = [Observer(bootstrap, t, forwarded_order, 5) for t in topics[1:3]] if timed_hops else []
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    try:
        for process in processes:
            await process.start()
        await asyncio.gather(*(p.wait_ready() for p in processes))
        for started in (observer, *waypoints):
            await started.start()
        await producer.start()
        measured = {p.name: p.pid for p in processes} | bench.stack.pids() | {"benchmark": os.getpid()}
        await measure(producer, observer, topics[0], commands(WARM_UP_ORDERS), "baseline warm-up", measured)
        fixed = commands(int(rate * seconds))
        phases = {
            "fixed": await measure(
                producer,
                observer,
                topics[0],
                fixed,
                f"baseline {rate:g}/s offered",
                measured,
                rate,
                waypoints,
            ),
        }
        for stopped in waypoints:
            await stopped.stop()
        phases["saturation"] = await measure(
            producer, observer, topics[0], commands(orders), "baseline saturation", measured
        )
        return phases
    finally:
        await producer.stop()
        for stopped in (observer, *waypoints):
            await stopped.stop()
        for process in processes:
            await process.stop()


def report_fixed_phase_waits(report: Report, rate: float, fixed: Phase, raw_fixed: Phase) -> None:
    """What every hop waits for at the fixed rate, in both pipes: the broker's acknowledgement of a produce
    request (as the load generator saw it), how busy the broker was (a share of one core), and with
    `--hops` each hop's latency."""
    for label, phase in (("", fixed), ("baseline ", raw_fixed)):
        for name, value in percentiles(phase.acknowledgement_ms, (50, 99)).items():
            report.add(f"{label}broker acknowledgement {name} at {rate:g}/s", value, "ms")
        busy = phase.cpu_seconds.get("kafka", 0.0) / phase.seconds * 100
        report.add(f"{label}broker CPU at {rate:g}/s", busy, "% of a core")
        for hop, latencies in zip(HOPS, phase.hop_latencies_ms, strict=False):  # none without --hops
            for name, value in percentiles(latencies, (50, 99)).items():
                report.add(f"{label}hop {hop} {name} at {rate:g}/s", value, "ms")


def main() -> None:
    options = parser(__doc__ or "")
    options.add_argument("--orders", type=int, default=20_000, help="orders sent flat out (saturation)")
    options.add_argument("--rate", type=float, default=1000.0, help="offered orders/s of the fixed phase")
    options.add_argument("--seconds", type=float, default=10.0, help="length of the fixed-rate phase")
    options.add_argument("--services", type=int, default=1, help="service instances in the consumer group")
    options.add_argument(
        "--hops",
        action="store_true",
        help="also time each hop of the fixed phase (two more consumers poll the broker meanwhile)",
    )
    args = options.parse_args()
    if args.smoke:
        args.orders, args.rate, args.seconds = 500, 200.0, 1.0

    async def benchmark(bench: Run) -> Report:
        report = Report(
            "pipeline",
            {
                "orders": args.orders,
                "offered_rate": args.rate,
                "fixed_seconds": args.seconds,
                "services": args.services,
                "partitions": args.partitions,
            },
        )
        phases = await pipeline(bench, args.orders, args.rate, args.seconds, args.services, args.hops)
        raw_phases = await baseline(bench, args.orders, args.rate, args.seconds, args.hops)
        raw, raw_fixed = raw_phases["saturation"], raw_phases["fixed"]
        saturation, fixed = phases["saturation"], phases["fixed"]
        ratio = saturation.throughput / raw.throughput
        report.add(
            "saturation throughput",
            saturation.throughput,
            "orders/s",
            f">= {TARGET_THROUGHPUT:,.0f}",
            saturation.throughput >= TARGET_THROUGHPUT,
        )
        report.add("baseline throughput (raw aiokafka)", raw.throughput, "msgs/s")
        report.add("ratio to baseline", ratio * 100, "%", f">= {TARGET_RATIO:.0%}", ratio >= TARGET_RATIO)
        for name, value in percentiles(saturation.latencies_ms).items():
            report.add(f"saturation latency {name}", value, "ms")
        # The broker's, not the service's: see `Observer._read`. Zero in the baseline, one producer a topic.
        report.add("status events passed over by a fetch, read again", fixed.gaps + saturation.gaps, "gaps")
        report.add("baseline: passed over, read again", raw_fixed.gaps + raw.gaps, "gaps")
        report.add("fixed phase throughput", fixed.throughput, "orders/s")
        for name, value in percentiles(fixed.latencies_ms).items():
            held = name == "p99" and args.rate in TARGET_P99_MS
            limit = TARGET_P99_MS.get(args.rate, 0.0)
            report.add(
                f"latency {name} at {args.rate:g}/s",
                value,
                "ms",
                f"<= {limit:.0f} ms" if held else "",
                value <= limit if held else None,
            )
        cpu_ms = {name: s / saturation.orders * 1000 for name, s in saturation.cpu_seconds.items()}
        for name, per_order in cpu_ms.items():
            report.add(f"CPU per order: {name}", per_order, "ms")
        service_ms = sum(v for name, v in cpu_ms.items() if name.startswith("service"))
        for name, value, limit in (
            ("service, all instances", service_ms, TARGET_SERVICE_CPU_MS),
            ("simulator", cpu_ms.get("sim", 0.0), TARGET_SIMULATOR_CPU_MS),
        ):
            report.add(f"CPU per order: {name}", value, "ms", f"<= {limit:.2f} ms", value <= limit)
        raw_ms = {name: s / raw.orders * 1000 for name, s in raw.cpu_seconds.items()}
        for name, per_order in raw_ms.items():
            # Per order: the forwarder in the service's place (baseline-0) moves two messages of each.
            report.add(f"baseline CPU per order: {name}", per_order, "ms")
        forwarders = (
            ("service, all instances", service_ms, "baseline-0", TARGET_SERVICE_FORWARDERS),
            ("simulator", cpu_ms.get("sim", 0.0), "baseline-1", None),
        )
        for name, value, place, multiple in forwarders:
            times = value / raw_ms[place] if raw_ms.get(place) else float("nan")
            report.add(
                f"CPU per order: {name} / the forwarder in its place",
                times,
                "times",
                f"<= {multiple:g}" if multiple else "",
                times <= multiple if multiple else None,
            )
        for name, value in percentiles(raw.latencies_ms).items():
            report.add(f"baseline saturation latency {name}", value, "ms")
        for name, value in percentiles(raw_fixed.latencies_ms).items():
            report.add(f"baseline latency {name} at {args.rate:g}/s", value, "ms")
        report_fixed_phase_waits(report, args.rate, fixed, raw_fixed)
        checked = (
            ("fixed phase", fixed),
            ("saturation", saturation),
            ("baseline", raw),
            ("baseline fixed", raw_fixed),
        )
        for name, phase in checked:
            report.check(f"{name}: every order through", phase.missing == 0, f"{phase.missing:,} missing")
        return report

    run(benchmark, args)


if __name__ == "__main__":
    main()
