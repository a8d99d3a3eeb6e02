"""Webhook relay: status events in, signed deliveries out, to a local receiver that costs next to nothing.

    make bench-relay                 # 20,000 events at saturation, then 1,000/s for 10 s
    make bench-relay ARGS=--smoke    # a small size, for CI

`orders relay` runs as a child process with one endpoint registered, pointing at `bench.receiver` (its own
process, recording the arrival time of every delivery by its `webhook-id`). This process publishes
`OrderStatusChanged` events of many orders (sequences 1..4 each) straight onto the status-changed topic and
notes when it sent each one, so a delivery's latency is event published → delivery received.

Phases, in this order:

1. Baseline: the relay's own HTTP client and attempt code (`post_event`, same client settings, same signing)
   posting the same bodies to the same receiver with the same concurrency, with no relay: what HTTP alone
   allows on this machine. Its CPU per delivery is measured too, so the relay's can be counted in it (a
   figure the host's speed does not move). Then the same with aiohttp, an established client, as the
   reference: the relay posted with aiohttp when issue 16 set its targets, so that ratio stays comparable.
2. Saturation: `--events` events published as fast as possible while the relay is frozen (SIGSTOP), then
   the relay thawed to drain them, with the machine to itself as the baseline has it; deliveries/s from the
   thaw to the last delivery, with the CPU per delivery of the relay, the receiver, the broker and Redis.
   Targets: at least 3,000/s, and at least 50 % of the baseline.
3. Latency: `--rate` events/s offered for `--seconds`; p50/p95/p99 publish → delivery. Target: p99 < 50 ms
   at 1,000/s. Its floor, measured before the relay starts at the same rate: `bench.kafka_post` reading a
   topic of its own as the relay's consumer does and posting each event with the relay's client, with no
   Redis, no queue and no ordering: the broker's hop and the HTTP request, all that a delivery cannot skip.

Checks (any failure exits 1): every event delivered, none twice, each order's in sequence, and every
sampled delivery's signature verifies with the endpoint's secret.
"""

import argparse
import asyncio
import os
import signal
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bench.harness import OrdersProcess, Report, Run, paced, parser, percentiles, progress, run
from bench.receiver import Arrival, ReceiverProcess
from contracts.events import OrderItemView, OrderStatusChanged, OrderView, ServiceView
from contracts.statuses import (
    DeliveryStatus,
    OneOrderStatus,
    OrderItemStatus,
    OrderStatus,
    OrderType,
    ProductType,
    ServiceStatus,
)
from service.kafka import ensure_topics
from service.relay.sender import http_client, post_event, signature_headers
from service.store.webhook_endpoints import Endpoint, EndpointStore

CLIENT_ID = "bench-relay"
LIFECYCLE = (OrderStatus.PENDING, OrderStatus.CONFIRMED, OrderStatus.USED, OrderStatus.CANCELLED)
"""The statuses of each order's events 1..4 (a prebooking confirmed, used, then cancelled by staff)."""

TARGET_THROUGHPUT = 3_000.0
TARGET_BASELINE_SHARE = 0.50
TARGET_P99_MS = 50.0
TARGET_CPU_PER_THOUSAND = 0.25
"""Seconds of the relay's CPU per 1,000 deliveries (0.25 ms each). These are issue 16's targets."""


@dataclass(frozen=True)
class Event:
    """One published event, as the checks need it."""

    event_id: str
    order_id: str
    sequence: int
    body: bytes


def make_events(prefix: str, count: int) -> list[Event]:
    """`count` valid events of `count / 4` orders, in publishing order: every order's first event, then
    every order's second, …, so each order's events are spread out as in real traffic."""
    orders = max(1, count // len(LIFECYCLE))
    events = []
    for index in range(count):
        order_number, sequence = index % orders, index // orders + 1
        order_id = f"{prefix}-{order_number:06d}"
        status = LIFECYCLE[(sequence - 1) % len(LIFECYCLE)]
        previous = LIFECYCLE[(sequence - 2) % len(LIFECYCLE)] if sequence > 1 else None
        event = OrderStatusChanged(
            event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{order_id}/{sequence}")),
            order_id=order_id,
            client_id=CLIENT_ID,
            order_type=OrderType.PREBOOKING,
            sequence=sequence,
            status=status,
            status_name=status.label,
            previous_status=previous,
            reason=None,
            occurred_at=datetime.now(UTC),
            order=OrderView(
                status=OneOrderStatus.OPENED,
                items=[
                    OrderItemView(
                        order_item_id="ITEM-1",
                        resource_id="LHR-T5-LOUNGE",
                        product_type=ProductType.LOUNGE,
                        service_date="2026-12-24",
                        status=OrderItemStatus.ACTIVE,
                        services=[
                            ServiceView(
                                service_id="ITEM-1-PAX-1",
                                passenger_id="PAX-1",
                                passenger_name="Ada Lovelace",
                                status=ServiceStatus.CONFIRMED,
                                delivery_status=DeliveryStatus.READY_TO_PROCEED,
                            )
                        ],
                    )
                ],
            ),
        )
        events.append(Event(event.event_id, order_id, sequence, event.model_dump_json().encode()))
    return events


# --- CPU accounting ---------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds that processes spend between `__enter__` and `__exit__`."""

    def __init__(self, **pids: int) -> None:
        self._pids = pids
        self.used: dict[str, float] = {}

    def __enter__(self) -> "CpuMeter":
        self._start = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        return self

    def __exit__(self, *_: object) -> None:
        self.used = {name: cpu_seconds(pid) - self._start[name] for name, pid in self._pids.items()}


async def start_profiler(output: Path, pid: int) -> asyncio.subprocess.Process:
    """py-spy sampling the relay (`output`: an .svg flame graph, or .txt for py-spy's raw stacks)."""
    py_spy = Path(sys.executable).with_name("py-spy")
    kind = "raw" if output.suffix == ".txt" else "flamegraph"
    return await asyncio.create_subprocess_exec(
        str(py_spy), "record", "--nonblocking", "--rate", "200", "--format", kind,
        "--output", str(output), "--pid", str(pid),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


# --- phases -----------------------------------------------------------------------------------------------


async def post_all(
    label: str, events: Sequence[Event], concurrency: int, post: Callable[[Event], Awaitable[bool]]
) -> float:
    """Deliveries/s of `concurrency` posters sharing `events`, each posted by `post` (whether it was
    delivered); fails if any was not."""
    pending: Iterator[Event] = iter(events)
    failures = 0

    async def poster() -> None:
        nonlocal failures
        for event in pending:  # shared iterator: each poster takes the next event
            failures += not await post(event)
            advance(1)

    with progress(label, len(events)) as advance:
        started = time.perf_counter()
        await asyncio.gather(*(poster() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{label}: {failures} posts failed; the receiver is not keeping up")
    return len(events) / elapsed


async def baseline(
    endpoint: Endpoint,
    events: Sequence[Event],
    concurrency: int,
    timeout: float,  # noqa: ASYNC109 - the per-request HTTP timeout the relay uses, not a cancel scope
) -> float:
    """Deliveries/s of the relay's HTTP client and attempt code alone, with the relay's concurrency."""

    async def post(event: Event) -> bool:
        now = datetime.now(UTC)
        result = await post_event(client, endpoint, event.event_id, event.body, now, timeout, 1024)
        return result.delivered

    async with http_client() as client:
        return await post_all("baseline: HTTP alone", events, concurrency, post)


async def aiohttp_baseline(
    endpoint: Endpoint,
    events: Sequence[Event],
    concurrency: int,
    timeout: float,  # noqa: ASYNC109 - the per-request HTTP timeout the relay uses, not a cancel scope
) -> float:
    """Deliveries/s of aiohttp posting the same signed bodies with the same concurrency: the reference client
    (as the relay used it before its own: keep-alive, no cookies, no redirects, a capped answer)."""

    async def post(event: Event) -> bool:
        headers = signature_headers(endpoint, event.event_id, event.body, datetime.now(UTC))
        headers["content-type"] = "application/json"
        async with session.post(
            endpoint.url, data=event.body, headers=headers, allow_redirects=False
        ) as response:
            await response.content.read(1024)
            return 200 <= response.status < 300

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as session:
        return await post_all("reference: aiohttp alone", events, concurrency, post)


async def latency_floor(
    run_: Run,
    args: argparse.Namespace,
    endpoint: Endpoint,
    receiver: ReceiverProcess,
    producer: AIOKafkaProducer,
    prefix: str,
) -> list[float]:
    """Publish → delivery latencies (ms) at `--rate` for `--seconds` through `bench.kafka_post`: the
    relay's consumer settings and HTTP client with nothing between them, on a topic no relay reads."""
    settings = run_.settings
    bootstrap = settings.kafka_bootstrap_servers
    topic = f"bench.relay-floor-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [topic], settings.topic_partitions, 1)
    poster = OrdersProcess("floor", run_.environ(), run_.workdir / "floor.log")
    poster.argv = ["bench.kafka_post", bootstrap, f"{topic}.group", topic, endpoint.model_dump_json()]
    poster.argv += ["--max-batch", str(settings.max_batch)]
    poster.argv += ["--fetch-max-wait-ms", str(settings.kafka_fetch_max_wait_ms)]
    poster.argv += ["--concurrency", str(settings.relay_concurrency_per_endpoint)]
    poster.argv += ["--timeout", str(settings.relay_timeout_seconds)]
    events = make_events(f"{prefix}-F", int(args.rate * args.seconds))
    await poster.start()
    try:
        await poster.wait_ready()
        warm_up = make_events(f"{prefix}-FW", min(400, args.events))
        await publish_all(producer, topic, warm_up)  # the group's join and first fetches, outside the figure
        if await receiver.wait_for_count(len(warm_up), within=60) < len(warm_up):
            raise RuntimeError("latency floor: the warm-up was not delivered (see floor.log)")
        await receiver.reset()
        sent, arrivals = await offer_at_rate("latency floor", producer, topic, events, receiver, args)
        await receiver.reset()
    finally:
        await poster.kill()
    return latencies_ms(sent, arrivals)


async def offer_at_rate(
    label: str,
    producer: AIOKafkaProducer,
    topic: str,
    events: Sequence[Event],
    receiver: ReceiverProcess,
    args: argparse.Namespace,
) -> tuple[dict[str, float], list[Arrival]]:
    """Publish `events` at `--rate` and wait for their deliveries: each one's send time, and the arrivals."""
    with progress(f"{label}: {args.rate:,.0f}/s offered", len(events)) as advance:
        publishing = asyncio.create_task(publish_at_rate(producer, topic, events, args.rate))
        await receiver.wait_for_count(len(events), args.seconds + args.deadline, advance)
        sent = await publishing
    return sent, await receiver.arrivals()


def latencies_ms(sent: dict[str, float], arrivals: Sequence[Arrival]) -> list[float]:
    """Publish → delivery of every arrival of a sent event, in milliseconds."""
    return [(a.at - sent[a.webhook_id]) * 1000 for a in arrivals if a.webhook_id in sent]


async def publish_all(producer: AIOKafkaProducer, topic: str, events: Sequence[Event]) -> dict[str, float]:
    """Publish as fast as the producer takes them; returns each event's send time."""
    sent: dict[str, float] = {}
    futures = []
    for event in events:
        sent[event.event_id] = time.time()
        futures.append(await producer.send(topic, event.body, key=event.order_id.encode()))
    await asyncio.gather(*futures)
    return sent


async def publish_frozen(
    relay: OrdersProcess, producer: AIOKafkaProducer, topic: str, events: Sequence[Event]
) -> None:
    """Publish while the relay is frozen (SIGSTOP), and thaw it once every event is on the topic: it then
    drains a backlog with the machine to itself, as the baseline does. Publishing costs this process and the
    broker about a core for a second, which the relay would share otherwise (it delivered a third of its
    later rate while they ran, on 2026-12-04)."""
    assert relay.process is not None
    relay.process.send_signal(signal.SIGSTOP)
    try:
        await publish_all(producer, topic, events)
    finally:
        relay.process.send_signal(signal.SIGCONT)


async def publish_at_rate(
    producer: AIOKafkaProducer, topic: str, events: Sequence[Event], rate: float
) -> dict[str, float]:
    """Publish at `rate` events/s, in small bursts every few milliseconds; returns each event's send time."""
    sent: dict[str, float] = {}
    futures = []
    async for due in paced(len(events), rate):
        for event in events[due.start : due.stop]:
            sent[event.event_id] = time.time()
            futures.append(await producer.send(topic, event.body, key=event.order_id.encode()))
    await asyncio.gather(*futures)
    return sent


# --- checks -----------------------------------------------------------------------------------------------


def check_deliveries(
    report: Report, phase: str, events: Sequence[Event], arrivals: Sequence[Arrival]
) -> None:
    """Every event delivered, none twice, each order's in sequence."""
    expected = {e.event_id for e in events}
    seen: dict[str, int] = defaultdict(int)
    for arrival in arrivals:
        seen[arrival.webhook_id] += 1
    missing = len(expected - seen.keys())
    doubled = sum(1 for n in seen.values() if n > 1)
    strays = len(seen.keys() - expected)
    report.check(f"{phase}: every event delivered", missing == 0, f"{missing} of {len(expected)} missing")
    report.check(f"{phase}: none delivered twice", doubled == 0 and strays == 0, f"{doubled} twice")
    by_id = {e.event_id: e for e in events}
    last: dict[str, int] = {}
    out_of_order = 0
    for arrival in arrivals:
        event = by_id.get(arrival.webhook_id)
        if event is None:
            continue
        if event.sequence < last.get(event.order_id, 0):
            out_of_order += 1
        last[event.order_id] = max(event.sequence, last.get(event.order_id, 0))
    report.check(f"{phase}: in sequence per order", out_of_order == 0, f"{out_of_order} out of order")


def check_signatures(report: Report, secret: str, arrivals: Sequence[Arrival]) -> None:
    """Every sampled delivery verifies with the endpoint's secret (as a receiver would check it)."""
    sampled = [(a.headers, a.body) for a in arrivals if a.headers is not None and a.body is not None]
    bad = 0
    for headers, body in sampled:
        try:
            Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            bad += 1
    report.check("signatures verify", bool(sampled) and bad == 0, f"{len(sampled) - bad} of {len(sampled)}")


# --- the benchmark ----------------------------------------------------------------------------------------


@dataclass
class Measured:
    """What the phases measured, for the report."""

    baseline_rate: float = 0.0
    reference_rate: float = 0.0
    """The aiohttp reference's deliveries/s."""
    throughput: float = 0.0
    offered: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    floor_latencies_ms: list[float] = field(default_factory=list)
    """Publish → delivery through `bench.kafka_post`, at the latency phase's rate."""
    cpu: dict[str, float] = field(default_factory=dict)


async def benchmark(run_: Run, args: argparse.Namespace) -> Report:
    settings = run_.settings
    report = Report(
        "relay",
        {
            "events": args.events,
            "rate": args.rate,
            "seconds": args.seconds,
            "concurrency_per_endpoint": settings.relay_concurrency_per_endpoint,
            "partitions": settings.topic_partitions,
        },
    )
    receiver = ReceiverProcess(run_.workdir, sample_every=args.sample_every)
    await receiver.start()
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    relay = OrdersProcess("relay", run_.environ(), run_.workdir / "relay.log")
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    try:
        endpoint = await EndpointStore(redis).create(CLIENT_ID, receiver.url, datetime.now(UTC))
        measured = await measure(run_, args, report, endpoint, receiver, relay, producer)
        exit_code = await relay.stop()
        report.check("relay exited cleanly on SIGTERM", exit_code == 0, f"exit code {exit_code}")
    finally:
        if relay.process is not None and relay.process.returncode is None:
            await relay.kill()
        await producer.stop()
        await receiver.stop()
        await redis.aclose()
    add_figures(report, measured)
    return report


async def measure(
    run_: Run,
    args: argparse.Namespace,
    report: Report,
    endpoint: Endpoint,
    receiver: ReceiverProcess,
    relay: OrdersProcess,
    producer: AIOKafkaProducer,
) -> Measured:
    """The three phases, with the delivery checks of each."""
    settings = run_.settings
    topic = settings.topic_status_changed
    prefix = f"ORD-{uuid.uuid4().hex[:6]}"
    warmup_events = make_events(f"{prefix}-W", min(400, args.events))
    saturation_events = make_events(f"{prefix}-S", args.events)
    latency_events = make_events(f"{prefix}-L", int(args.rate * args.seconds))
    measured = Measured()

    # 1. Baselines, before the relay starts, so that nothing else competes for the CPU.
    concurrency, timeout = settings.relay_concurrency_per_endpoint, settings.relay_timeout_seconds
    with CpuMeter(receiver=receiver.pid, client=os.getpid()) as baseline_cpu:
        measured.baseline_rate = await baseline(endpoint, saturation_events, concurrency, timeout)
    await receiver.reset()
    with CpuMeter(client=os.getpid()) as reference_cpu:
        measured.reference_rate = await aiohttp_baseline(endpoint, saturation_events, concurrency, timeout)
    await receiver.reset()
    await producer.start()
    measured.floor_latencies_ms = await latency_floor(run_, args, endpoint, receiver, producer, prefix)

    await relay.start()
    await relay.wait_ready()

    # Warm-up: connections, scripts and the consumer's first fetches, outside the measurements.
    await publish_all(producer, topic, warmup_events)
    await receiver.wait_for_count(len(warmup_events), within=60)
    check_deliveries(report, "warm-up", warmup_events, await receiver.arrivals())
    await receiver.reset()

    # 2. Saturation, from a backlog on the topic.
    await publish_frozen(relay, producer, topic, saturation_events)
    profiler = await start_profiler(args.profile, relay.pid) if args.profile else None
    with (
        CpuMeter(relay=relay.pid, receiver=receiver.pid, **run_.stack.pids()) as saturation_cpu,
        progress("saturation: published → delivered", len(saturation_events)) as advance,
    ):
        started = time.time()
        await receiver.wait_for_count(len(saturation_events), args.deadline, advance)
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        await profiler.wait()
    saturation_arrivals = await receiver.arrivals()
    check_deliveries(report, "saturation", saturation_events, saturation_arrivals)
    if saturation_arrivals:
        delivered = len({a.webhook_id for a in saturation_arrivals})
        measured.throughput = delivered / (max(a.at for a in saturation_arrivals) - started)
    await receiver.reset()

    # 3. Latency at a fixed offered rate.
    sent, latency_arrivals = await offer_at_rate("latency", producer, topic, latency_events, receiver, args)
    check_deliveries(report, "latency", latency_events, latency_arrivals)
    if len(sent) > 1:
        measured.offered = len(sent) / (max(sent.values()) - min(sent.values()))
    measured.latencies_ms = latencies_ms(sent, latency_arrivals)

    check_signatures(report, endpoint.secrets[0].secret, saturation_arrivals + latency_arrivals)
    per_thousand = 1000 / len(saturation_events)
    measured.cpu = {
        "relay": saturation_cpu.used["relay"] * per_thousand,
        "receiver": saturation_cpu.used["receiver"] * per_thousand,
        "receiver_baseline": baseline_cpu.used["receiver"] * per_thousand,
        "client_baseline": baseline_cpu.used["client"] * per_thousand,
        "client_reference": reference_cpu.used["client"] * per_thousand,
        **{f"{name} (saturation)": used * per_thousand for name, used in saturation_cpu.used.items()},
    }
    return measured


def add_figures(report: Report, measured: Measured) -> None:
    """The figures, each with the target it is held to (targets are not verdicts)."""
    report.add("baseline: HTTP client alone", measured.baseline_rate, "deliveries/s")
    throughput = measured.throughput
    report.add(
        "relay throughput at saturation",
        throughput,
        "deliveries/s",
        target=f">= {TARGET_THROUGHPUT:,.0f}",
        met=throughput >= TARGET_THROUGHPUT,
    )
    share = throughput / measured.baseline_rate
    report.add(
        "relay / baseline",
        share * 100,
        "%",
        target=f">= {TARGET_BASELINE_SHARE:.0%}",
        met=share >= TARGET_BASELINE_SHARE,
    )
    report.add(
        "relay CPU per 1,000 deliveries",
        measured.cpu["relay"],
        "s",
        target=f"<= {TARGET_CPU_PER_THOUSAND:.2f}",
        met=measured.cpu["relay"] <= TARGET_CPU_PER_THOUSAND,
    )
    report.add("reference: aiohttp alone", measured.reference_rate, "deliveries/s")
    report.add("relay / aiohttp alone", throughput / measured.reference_rate * 100, "%")
    report.add("baseline CPU per 1,000 deliveries", measured.cpu["client_baseline"], "s")
    report.add("aiohttp CPU per 1,000 deliveries", measured.cpu["client_reference"], "s")
    report.add(
        "relay CPU per delivery / the baseline's",
        measured.cpu["relay"] / measured.cpu["client_baseline"],
        "times",
    )
    report.add("receiver CPU per 1,000 (relay)", measured.cpu["receiver"], "s")
    report.add("receiver CPU per 1,000 (baseline)", measured.cpu["receiver_baseline"], "s")
    for name in ("kafka", "redis"):
        report.add(f"{name} CPU per 1,000 (saturation)", measured.cpu[f"{name} (saturation)"], "s")
    report.add("offered rate achieved", measured.offered, "events/s")
    for point, value in percentiles(measured.latencies_ms).items():
        held = point == "p99"
        report.add(
            f"latency {point} (publish → delivery)",
            value,
            "ms",
            target=f"<= {TARGET_P99_MS:.0f}" if held else "",
            met=value <= TARGET_P99_MS if held else None,
        )
    report.add("latency max", max(measured.latencies_ms, default=float("nan")), "ms")
    for point, value in percentiles(measured.floor_latencies_ms).items():
        report.add(f"latency floor {point} (bare hop + HTTP)", value, "ms")


def main() -> None:
    found = parser(__doc__.split("\n", 1)[0])
    found.add_argument("--events", type=int, default=20_000, help="events published at saturation")
    found.add_argument("--rate", type=float, default=1_000.0, help="events/s offered in the latency phase")
    found.add_argument("--seconds", type=float, default=10.0, help="length of the latency phase")
    found.add_argument("--deadline", type=float, default=600.0, help="seconds to wait for deliveries")
    found.add_argument("--sample-every", type=int, default=100, help="verify the signature of 1 in N")
    found.add_argument(
        "--profile", type=Path, default=None, help="py-spy the relay at saturation into this .svg (or .txt)"
    )
    args = found.parse_args()
    if args.smoke:
        args.events, args.seconds = 1_000, 2.0
    run(
        partial(benchmark, args=args),
        args,
        relay_require_https=False,
        relay_allowed_networks=["127.0.0.0/8"],
    )


if __name__ == "__main__":
    main()
