"""Webhook endpoint chaos: endpoints that fail in different ways for a while, then recover.

    make bench-webhook_chaos                      # 1,000 orders, 10 s of chaos
    make bench-webhook_chaos ARGS="--smoke"       # CI size
    make bench-webhook_chaos ARGS="--hostile"     # 64 hanging endpoints beside a healthy one (see
                                                  # bench/webhook_hostile.py)

Runs `orders service`, `orders resource-sim` and `orders relay` as child processes, and one loopback
receiver per misbehaviour (see `bench/chaos_receiver.py`), each registered as an endpoint of the same
client: one answers 500, one hangs past the relay's timeout, one closes the connection without answering,
one answers slowly within the timeout, and one is a healthy control. Orders go out during the chaos period;
then every receiver recovers, and the benchmark waits until each has every status event.

Verdicts: every status event reached every endpoint (2xx) at least once; per endpoint and order, the first
successful deliveries came in `sequence` order; every request carried a valid Standard Webhooks signature
by the endpoint's secret; no delivery is dead; no endpoint was disabled; the relay never crashed.
Figures: deliveries, attempts, failures by kind, duplicates, and the time to drain after recovery.
"""

import argparse
import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from bench import webhook_hostile
from bench.chaos_receiver import ChaosReceiver, Misbehaviour
from bench.harness import OrdersProcess, Report, Run, console, parser, progress, run
from contracts.commands import CancelOrder, CreatePrebooking
from contracts.events import OrderStatusChanged
from contracts.statuses import OrderStatus
from service.store.webhook_deliveries import DeliveryStore
from service.store.webhook_endpoints import Endpoint, EndpointState, EndpointStore
from testkit.factories import prebooking
from testkit.kafka_tap import TopicTap
from testkit.webhook_receiver import Received

CLIENT = "acme-air"
FULL_RESOURCE = "RES-FULL"
RELAY_TIMEOUT_SECONDS = 2.0
# Long enough to outlast the chaos (about 30 s of retries), short enough that recovery is seen within seconds.
RETRY_SCHEDULE_SECONDS = [0.2, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
WAVES = 20


@dataclass
class Ledger:
    """One receiver's requests, read incrementally: the first 2xx of each event, and every repeat."""

    receiver: ChaosReceiver
    first: dict[str, Received] = field(default_factory=dict)
    """event_id → its first request answered 2xx, in the order they came."""
    successes: Counter[str] = field(default_factory=Counter)
    _read: int = 0

    def update(self) -> None:
        fresh = self.receiver.received[self._read :]
        self._read += len(fresh)
        for request in fresh:
            if 200 <= request.status < 300:
                self.successes[request.webhook_id] += 1
                self.first.setdefault(request.webhook_id, request)

    def has_all(self, event_ids: set[str]) -> int:
        """How many of `event_ids` arrived."""
        self.update()
        return len(event_ids & self.first.keys())


async def benchmark(run_: Run, args: argparse.Namespace) -> Report:
    settings = run_.settings
    rng = random.Random(args.seed)
    report = Report(
        "webhook_chaos",
        {"orders": args.orders, "chaos_seconds": args.chaos_seconds, "endpoints": len(Misbehaviour)},
    )
    receivers = {m: ChaosReceiver(m, settings.relay_timeout_seconds) for m in Misbehaviour}
    for receiver in receivers.values():
        await receiver.start()
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    # Registered before any order exists, so that every status event is queued for every endpoint.
    endpoints = {
        m: await EndpointStore(redis).create(CLIENT, r.url, datetime.now(UTC), description=m.value)
        for m, r in receivers.items()
    }
    tap = TopicTap(settings.kafka_bootstrap_servers, [settings.topic_status_changed])
    processes = [
        OrdersProcess("service", run_.environ(), run_.workdir / "service.log", consumers=2),
        OrdersProcess("resource-sim", run_.environ(), run_.workdir / "resource-sim.log"),
        OrdersProcess("relay", run_.environ(), run_.workdir / "relay.log"),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5)
    await tap.start()
    await producer.start()
    try:
        for process in processes:
            await process.start()
        await asyncio.gather(*(p.wait_ready() for p in processes))
        commands, expected = workload(rng, args.orders)
        for receiver in receivers.values():
            receiver.start_chaos()
        chaos_started = time.monotonic()
        await send_during_chaos(producer, settings.topic_commands, commands, args.chaos_seconds * 0.75)
        await asyncio.sleep(max(0.0, chaos_started + args.chaos_seconds - time.monotonic()))
        for receiver in receivers.values():
            receiver.recover()
        recovered_at = time.monotonic()
        events = await all_events(tap, settings.topic_status_changed, expected)
        ledgers = {m: Ledger(r) for m, r in receivers.items()}
        drained = await wait_for_deliveries(ledgers, set(events), within=120 + len(events) / 5)
        drain_seconds = time.monotonic() - recovered_at
        deliveries = DeliveryStore(redis)
        # The receivers see a request before the relay records its outcome: wait for the queues to empty.
        await until_settled(deliveries, [e.endpoint_id for e in endpoints.values()], within=30)
        dead = {m: await deliveries.dead(e.endpoint_id) for m, e in endpoints.items()}
        attempts = {m: await deliveries.attempts(e.endpoint_id, count=10**7) for m, e in endpoints.items()}
        final = {
            e.endpoint_id: e
            for e in await EndpointStore(redis).get_many([e.endpoint_id for e in endpoints.values()])
        }
        relay_alive = processes[2].process is not None and processes[2].process.returncode is None
        for process in reversed(processes):
            await process.stop()
    finally:
        await producer.stop()
        await tap.stop()
        await redis.aclose()
        for process in processes:
            if process.process is not None and process.process.returncode is None:
                await process.kill()
        for receiver in receivers.values():
            await receiver.stop()

    judge(report, endpoints, ledgers, events, dead, final, drained)
    report.check(
        "relay never crashed", relay_alive and processes[2].starts == 1, f"starts={processes[2].starts}"
    )
    figures(report, endpoints, ledgers, events, attempts, recovered_at)
    report.add("status events", len(events))
    report.add("time to drain every endpoint after recovery", drain_seconds, "s")
    return report


def workload(
    rng: random.Random, orders: int
) -> tuple[list[CreatePrebooking | CancelOrder], dict[str, OrderStatus]]:
    """Prebookings: every tenth refused (2 events), a fifth cancelled right away (2 or 3 events: the
    cancellation races the confirmation), the rest confirmed (2 events)."""
    commands: list[CreatePrebooking | CancelOrder] = []
    expected: dict[str, OrderStatus] = {}
    for _ in range(orders):
        draw = rng.random()
        created = prebooking(FULL_RESOURCE if draw < 0.1 else "RES-OK", client_id=CLIENT)
        commands.append(created)
        expected[created.order_id] = OrderStatus.FAILED if draw < 0.1 else OrderStatus.CONFIRMED
        if 0.1 <= draw < 0.3:
            commands.append(
                CancelOrder(
                    command_id=f"{created.command_id}-cancel", client_id=CLIENT, order_id=created.order_id
                )
            )
            expected[created.order_id] = OrderStatus.CANCELLED
    return commands, expected


async def send_during_chaos(
    producer: AIOKafkaProducer, topic: str, commands: list[CreatePrebooking | CancelOrder], over: float
) -> None:
    """Send the commands in waves spread over `over` seconds, so that events keep coming during the chaos."""
    size = max(1, -(-len(commands) // WAVES))
    with progress("sending orders during the chaos", len(commands)) as advance:
        for start in range(0, len(commands), size):
            wave = commands[start : start + size]
            futures = [
                await producer.send(topic, c.model_dump_json().encode(), key=c.order_id.encode())
                for c in wave
            ]
            await asyncio.gather(*futures)
            advance(len(wave))
            await asyncio.sleep(over / WAVES)  # pacing of the load, not a wait for an outcome


async def all_events(
    tap: TopicTap, topic: str, expected: dict[str, OrderStatus]
) -> dict[str, OrderStatusChanged]:
    """event_id → event, once every order has reached its final status."""

    def complete() -> dict[str, OrderStatusChanged] | None:
        events = {e.event_id: e for e in tap.decoded(topic, OrderStatusChanged)}
        latest: dict[str, tuple[int, OrderStatus]] = {}
        for e in events.values():
            if e.sequence > latest.get(e.order_id, (0, e.status))[0]:
                latest[e.order_id] = (e.sequence, e.status)
        done = all(latest.get(o, (0, None))[1] is status for o, status in expected.items())
        return events if done else None

    return await tap.wait_for(complete, timeout=120)


async def wait_for_deliveries(
    ledgers: dict[Misbehaviour, Ledger], event_ids: set[str], within: float
) -> bool:
    """Wait until every receiver has had every event answered 2xx; False if not within `within` seconds."""
    with progress("waiting for every event at every endpoint", len(event_ids) * len(ledgers)) as advance:
        counts = dict.fromkeys(ledgers, 0)

        def probe(misbehaviour: Misbehaviour) -> Callable[[], bool]:
            def arrived() -> bool:
                count = ledgers[misbehaviour].has_all(event_ids)
                advance(count - counts[misbehaviour])
                counts[misbehaviour] = count
                return count == len(event_ids)

            return arrived

        try:
            async with asyncio.timeout(within):
                await asyncio.gather(
                    *(ledger.receiver.wait_for(probe(m), timeout=within) for m, ledger in ledgers.items())
                )
        except TimeoutError:
            return False
    return True


async def until_settled(deliveries: DeliveryStore, endpoint_ids: list[str], within: float) -> None:
    """Poll (a Redis queue announces nothing) until no endpoint has an order with events still queued."""
    deadline = time.monotonic() + within
    while True:
        backlog = await deliveries.backlogs(endpoint_ids)
        if not any(backlog.values()) or time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.1)


def judge(
    report: Report,
    endpoints: dict[Misbehaviour, Endpoint],
    ledgers: dict[Misbehaviour, Ledger],
    events: dict[str, OrderStatusChanged],
    dead: dict[Misbehaviour, dict[str, dict[str, Any]]],
    final: dict[str, Endpoint],
    drained: bool,
) -> None:
    missing = {m.value: len(events.keys() - ledger.first.keys()) for m, ledger in ledgers.items()}
    report.check(
        "every event delivered to every endpoint",
        drained and not any(missing.values()),
        ", ".join(f"{m} missing {n}" for m, n in missing.items() if n) or f"{len(events)} x {len(ledgers)}",
    )
    out_of_order: Counter[str] = Counter()
    for m, ledger in ledgers.items():
        last: dict[str, int] = {}
        for request in ledger.first.values():  # in the order they arrived
            event = events.get(request.webhook_id)
            if event is None:
                out_of_order[f"{m.value}: unknown event"] += 1
                continue
            if event.sequence <= last.get(event.order_id, 0):
                out_of_order[m.value] += 1
            last[event.order_id] = event.sequence
    report.check(
        "in order per order (first deliveries by sequence)",
        not out_of_order,
        ", ".join(f"{k} x{n}" for k, n in out_of_order.items()) or "0 out of order",
    )
    invalid: Counter[str] = Counter()
    checked = 0
    for m, ledger in ledgers.items():
        secret = endpoints[m].secrets[0].secret
        for request in ledger.receiver.received:
            checked += 1
            if not ledger.receiver.verifies(request, secret):
                invalid[m.value] += 1
    report.check(
        "every signature valid",
        not invalid and checked > 0,
        f"{checked} requests verified" + (f"; invalid: {dict(invalid)}" if invalid else ""),
    )
    dead_count = {m.value: len(d) for m, d in dead.items() if d}
    report.check("no dead deliveries", not dead_count, str(dead_count or 0))
    disabled = [
        m.value for m, e in endpoints.items() if final[e.endpoint_id].state is not EndpointState.ACTIVE
    ]
    report.check("no endpoint disabled", not disabled, ", ".join(disabled) or "all ACTIVE")


def figures(
    report: Report,
    endpoints: dict[Misbehaviour, Endpoint],
    ledgers: dict[Misbehaviour, Ledger],
    events: dict[str, OrderStatusChanged],
    attempts: dict[Misbehaviour, list[dict[str, str]]],
    recovered_at: float,
) -> None:
    """Per endpoint: attempts, deliveries, failures by kind, duplicates, and how long it took to catch up."""

    def caught_up(ledger: Ledger) -> float:
        return max((r.at for r in ledger.first.values()), default=recovered_at) - recovered_at

    control = caught_up(ledgers[Misbehaviour.HEALTHY])
    for m in endpoints:
        ledger, made = ledgers[m], attempts[m]
        delivered = [a for a in made if a.get("status", "").startswith("2")]
        report.add(f"{m.value}: attempts", len(made))
        report.add(f"{m.value}: deliveries", len(delivered))
        for kind, n in sorted(Counter(failure_kind(a) for a in made if a not in delivered).items()):
            report.add(f"{m.value}: failures {kind}", n)
        report.add(f"{m.value}: duplicates received", sum(n - 1 for n in ledger.successes.values()))
        report.add(f"{m.value}: caught up after recovery", max(0.0, caught_up(ledger)), "s")
        if m is not Misbehaviour.HEALTHY:
            # When the relay is still busy with the backlog at recovery, the control shows how much of the
            # drain time is that backlog, and this how much the endpoint's own misbehaviour added.
            report.add(f"{m.value}: caught up behind the healthy control", caught_up(ledger) - control, "s")


def failure_kind(attempt: dict[str, str]) -> str:
    """A failed attempt's kind: its HTTP status, a timeout, or the connection error's class."""
    if attempt.get("status"):
        return f"HTTP {attempt['status']}"
    error = attempt.get("error", "")
    if error.startswith("no answer within"):
        return "timeout"
    return error.split(":", 1)[0] or "unknown"


def main() -> None:
    options = parser(
        "Webhook endpoint chaos: failing endpoints recover and get every event, in order, signed."
    )
    options.add_argument("--orders", type=int, default=1000, help="prebookings (2-3 status events each)")
    options.add_argument("--chaos-seconds", type=float, default=10.0, help="how long the endpoints misbehave")
    options.add_argument("--seed", type=int, default=None, help="seed of the workload (default: random)")
    hostile = options.add_argument_group(
        "--hostile: 64 hanging endpoints beside a healthy one (bench.webhook_hostile)"
    )
    hostile.add_argument("--hostile", action="store_true", help="run the hostile scenario instead")
    hostile.add_argument("--rate", type=float, default=50.0, help="victim events/s")
    hostile.add_argument("--seconds", type=float, default=20.0, help="how long the victim's events come")
    hostile.add_argument("--attacker-orders", type=int, default=64, help="attacker events, queued x 64")
    args = options.parse_args()
    if args.hostile:
        if args.smoke:
            args.rate, args.seconds, args.attacker_orders = 20.0, 3.0, 64
        run(
            lambda run_: webhook_hostile.benchmark(run_, args),
            args,
            relay_require_https=False,
            relay_allowed_networks=["127.0.0.0/8"],
            **webhook_hostile.SETTINGS,
        )
        return
    if args.smoke:
        args.orders, args.chaos_seconds = 60, 4.0
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    console.print(f"seed {args.seed}")
    run(
        lambda run_: benchmark(run_, args),
        args,
        confirmation_timeout_seconds=3600.0,
        sim_fail_resources=FULL_RESOURCE,
        relay_require_https=False,
        relay_allowed_networks=["127.0.0.0/8"],
        relay_timeout_seconds=RELAY_TIMEOUT_SECONDS,
        relay_retry_schedule_seconds=RETRY_SCHEDULE_SECONDS,
        relay_jitter=0.1,
        relay_poll_seconds=0.05,
        # The breaker opens after a handful of failures and pauses briefly, so that it is exercised during the
        # chaos and closes again within a second or so of recovery.
        relay_breaker_failures=5,
        relay_breaker_pause_seconds=1.0,
        relay_attempt_log_length=10**7,  # every attempt stays countable
    )


if __name__ == "__main__":
    main()
