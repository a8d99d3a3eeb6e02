"""Hostile input: fuzzed messages mixed into valid traffic, on the commands and the replies topic.

    make bench-hostile_input                      # 5,000 valid orders, 10,000 hostile messages
    make bench-hostile_input ARGS="--smoke"       # CI size
    make bench-hostile_input ARGS="--seed 42"     # the same hostile messages again

Runs `orders service` (both consumers) and `orders resource-sim` as child processes. Valid orders
(prebookings, some to a resource that refuses; walk-ins on a granted entitlement, some cancelled by the
resource's staff) go out in waves; each wave carries its share of hostile messages (see `bench/fuzz.py`
for the categories). Each hostile message knows the one outcome it must get, and where to find it:

- a dead letter with a given `error_type`, found by the record's topic, partition and offset;
- a `command_rejected` with a given `code`, found by `client_id` and `command_id`;
- an anomaly in the service's anomaly log, found by the reply's `reply_id`.

Verdicts: every hostile message has exactly that outcome, once (re-publications of the same outcome are
counted, not failed: the contract allows them); no valid input was dead-lettered or rejected; every valid
order reached its expected status; no order named only by hostile input exists; the entitlement balance is
exactly what the valid walk-ins left; the service ran throughout without a restart and its consumer groups
committed everything.
"""

import argparse
import asyncio
import contextlib
import functools
import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from bench.consumer_offsets import until_caught_up
from bench.fuzz import Fuzzer, Hostile, Target
from bench.harness import OrdersProcess, Report, Run, console, parser, progress, run
from contracts.commands import CancelOrder, CreatePrebooking, RecordWalkIn
from contracts.events import CommandRejected, DeadLetter, OrderStatusChanged
from contracts.statuses import OrderStatus
from service.store.entitlements import EntitlementStore
from service.store.orders import ANOMALY_LOG_LENGTH, OrderStore
from testkit.factories import prebooking, walk_in
from testkit.kafka_tap import TopicTap

FULL_RESOURCE = "RES-FULL"
"""The simulator refuses every reservation at this resource."""
VICTIM = "acme-air"
INTRUDER = "mallory-air"
ValidCommand = CreatePrebooking | RecordWalkIn | CancelOrder
M = TypeVar("M", OrderStatusChanged, DeadLetter, CommandRejected)


@dataclass
class Plan:
    """The valid orders in waves, what each must end as, and the walk-ins' entitlement."""

    waves: list[list[ValidCommand]]
    expected: dict[str, OrderStatus]
    creations: dict[str, CreatePrebooking | RecordWalkIn]
    credential: str
    units_granted: int
    units_left: int


def plan_valid(rng: random.Random, orders: int, ids: str, wave_size: int) -> Plan:
    """Prebookings (every tenth to the refusing resource) and walk-ins (every fourth cancelled by staff)."""
    credential = f"CARD-{ids}"
    commands: list[ValidCommand] = []
    expected: dict[str, OrderStatus] = {}
    creations: dict[str, CreatePrebooking | RecordWalkIn] = {}
    walk_ins = cancelled = 0
    for n in range(orders):
        created: CreatePrebooking | RecordWalkIn
        if rng.random() < 0.7:
            full = rng.random() < 0.1
            created = prebooking(
                FULL_RESOURCE if full else "RES-OK", client_id=VICTIM, order_id=f"ORD-{ids}-v{n}"
            )
            expected[created.order_id] = OrderStatus.FAILED if full else OrderStatus.CONFIRMED
            commands.append(created)
        else:
            created = walk_in(client_id=VICTIM, credential=credential, order_id=f"WALK-{ids}-v{n}")
            walk_ins += 1
            expected[created.order_id] = OrderStatus.USED
            commands.append(created)
            if rng.random() < 0.25:
                cancelled += 1
                expected[created.order_id] = OrderStatus.CANCELLED
                # Right behind its walk-in: same key, same partition, one producer, so read after it.
                commands.append(
                    CancelOrder(
                        command_id=f"cmd-{ids}-v{n}-cancel",
                        client_id=VICTIM,
                        order_id=created.order_id,
                        initiated_by="RESOURCE_STAFF",
                    )
                )
        creations[created.order_id] = created
    waves: list[list[ValidCommand]] = []
    for command in commands:
        if not waves or (len(waves[-1]) >= wave_size and not isinstance(command, CancelOrder)):
            waves.append([])
        waves[-1].append(command)
    granted = walk_ins + 10  # a little to spare: every unit that leaves must be a valid walk-in's
    return Plan(waves, expected, creations, credential, granted, granted - (walk_ins - cancelled))


@dataclass
class Outcomes:
    """What the service published, read incrementally from the tap (each record parsed once)."""

    tap: TopicTap
    status_topic: str
    rejected_topic: str
    dead_topic: str
    latest: dict[str, tuple[int, OrderStatus]] = field(default_factory=dict)
    dead_letters: dict[tuple[str, int, int], list[DeadLetter]] = field(
        default_factory=lambda: defaultdict(list)
    )
    rejections: dict[str, dict[str, CommandRejected]] = field(default_factory=lambda: defaultdict(dict))
    rejection_records: int = 0
    _read: Counter[str] = field(default_factory=Counter)

    def update(self) -> None:
        for event in self._new(self.status_topic, OrderStatusChanged):
            if event.sequence > self.latest.get(event.order_id, (0, event.status))[0]:
                self.latest[event.order_id] = (event.sequence, event.status)
        for letter in self._new(self.dead_topic, DeadLetter):
            self.dead_letters[(letter.source_topic, letter.source_partition, letter.source_offset)].append(
                letter
            )
        for rejection in self._new(self.rejected_topic, CommandRejected):
            self.rejection_records += 1
            self.rejections[f"{rejection.client_id}/{rejection.command_id}"][rejection.event_id] = rejection

    def have_status(self, order_ids: set[str]) -> bool:
        """Whether every one of the orders has published a status event (so it exists)."""
        self.update()
        return order_ids <= self.latest.keys()

    def _new(self, topic: str, model: type[M]) -> list[M]:
        records = self.tap.records[topic]
        fresh = records[self._read[topic] :]
        self._read[topic] += len(fresh)
        return [model.model_validate_json(r.value) for r in fresh]


@dataclass
class Sent:
    """A hostile message as it went out: where it landed."""

    hostile: Hostile
    topic: str
    partition: int
    offset: int


async def benchmark(run_: Run, args: argparse.Namespace) -> Report:
    settings = run_.settings
    seed: int = args.seed
    rng = random.Random(seed)
    ids = settings.topic_commands.split(".")[0]  # the run's own prefix: ids never collide across runs
    wave_size = max(20, args.orders // 50)
    plan = plan_valid(rng, args.orders, ids, wave_size)
    fuzzer = Fuzzer(rng, settings.max_message_bytes, ids, VICTIM, INTRUDER, plan.credential)
    schedule = schedule_hostile(rng, fuzzer, args.fuzz, len(plan.waves))
    report = Report(
        "hostile_input",
        {"orders": args.orders, "hostile": args.fuzz, "seed": seed, "partitions": settings.topic_partitions},
    )

    redis = Redis.from_url(settings.redis_url.get_secret_value())
    await EntitlementStore(redis).grant(VICTIM, plan.credential, plan.units_granted)
    topics = {"commands": settings.topic_commands, "replies": settings.topic_resource_replies}
    tap = TopicTap(
        settings.kafka_bootstrap_servers,
        [settings.topic_status_changed, settings.topic_command_rejected, settings.topic_dead_letter],
    )
    outcomes = Outcomes(
        tap, settings.topic_status_changed, settings.topic_command_rejected, settings.topic_dead_letter
    )
    service = OrdersProcess("service", run_.environ(), run_.workdir / "service.log", consumers=2)
    simulator = OrdersProcess("resource-sim", run_.environ(), run_.workdir / "resource-sim.log")
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        linger_ms=5,
        max_request_size=4 * 2**20,
    )
    await tap.start()
    await producer.start()
    await simulator.start()
    await service.start()
    await asyncio.gather(simulator.wait_ready(), service.wait_ready())
    started = time.monotonic()
    try:
        sent = await send_all(producer, topics, plan, schedule, tap, outcomes, rng)
        sending_seconds = time.monotonic() - started
        settled = await wait_for_outcomes(tap, outcomes, plan, sent, within=120 + len(sent) / 10)
        settle_seconds = time.monotonic() - started
        anomalies = await wait_for_anomalies(OrderStore(redis), sent)
        lags = await until_caught_up(
            settings.kafka_bootstrap_servers,
            {
                f"{settings.consumer_group}.commands": [settings.topic_commands],
                f"{settings.consumer_group}.replies": [settings.topic_resource_replies],
            },
            within=60,
        )
        balance = await EntitlementStore(redis).balance(VICTIM, plan.credential)
        intruder_balance = await EntitlementStore(redis).balance(INTRUDER, plan.credential)
        alive = service.process is not None and service.process.returncode is None
        exit_code = await service.stop()
        await simulator.stop()
    finally:
        await producer.stop()
        await tap.stop()
        await redis.aclose()
        for process in (service, simulator):
            if process.process is not None and process.process.returncode is None:
                await process.kill()

    outcomes.update()
    judge(report, plan, outcomes, sent, anomalies, settled)
    check_run(report, plan, alive, service.starts, exit_code, balance, intruder_balance, lags)
    figures(report, outcomes, sent, anomalies, run_.workdir / "service.log")
    report.add("sending", sending_seconds, "s")
    report.add("until every outcome was seen", settle_seconds, "s")
    report.add("throughput", (sum(len(w) for w in plan.waves) + len(sent)) / settle_seconds, "messages/s")
    return report


async def send_all(
    producer: AIOKafkaProducer,
    topics: dict[str, str],
    plan: Plan,
    schedule: list[list[tuple[bool, "Maker"]]],
    tap: TopicTap,
    outcomes: Outcomes,
    rng: random.Random,
) -> list[Sent]:
    """Send the waves, each with its hostile messages; aimed ones only at orders that exist by then."""
    sent: list[Sent] = []
    used: set[str] = set()
    total = sum(len(w) for w in plan.waves) + sum(len(h) for h in schedule)
    with progress("sending valid and hostile messages", total) as advance:
        for number, wave in enumerate(plan.waves):
            hostile: list[Hostile] = []
            aimed_at: set[str] = set()
            for aimed, make in schedule[number]:
                target = pick_target(plan, number, used, rng) if aimed else None
                if target is not None:
                    aimed_at.add(target.created_by.order_id)
                hostile.append(make(target))
            # A conflict sent before its original command was read would win the command_id, a foreign
            # create sent before the victim's would create the order: wait until the targets exist.
            await tap.wait_for(functools.partial(outcomes.have_status, aimed_at), 120)
            sent += await send_wave(producer, topics, wave, hostile, rng)
            advance(len(wave) + len(hostile))
    return sent


Maker = Callable[[Target | None], Hostile]


def schedule_hostile(
    rng: random.Random, fuzzer: Fuzzer, count: int, waves: int
) -> list[list[tuple[bool, Maker]]]:
    """Which hostile messages go out with which wave, each marked whether it is aimed at an existing order:
    every category equally often, in random order. Aimed ones start from the third wave, so that their
    targets (orders of earlier waves) exist by then."""
    free = [_unaimed(make) for make in fuzzer.categories().values()]
    aimed = [_aimed(make) for make in fuzzer.targeted_categories().values()]
    every = [(False, m) for m in free] + [(True, m) for m in aimed]
    chosen = [every[n % len(every)] for n in range(count)]
    rng.shuffle(chosen)
    schedule: list[list[tuple[bool, Maker]]] = [[] for _ in range(waves)]
    aimed_waves = list(range(min(2, waves - 1), waves))
    for n, (is_aimed, make) in enumerate(chosen):
        schedule[aimed_waves[n % len(aimed_waves)] if is_aimed else n % waves].append((is_aimed, make))
    return schedule


def _unaimed(make: Callable[[], Hostile]) -> Maker:
    return lambda _: make()


def _aimed(make: Callable[[Target], Hostile]) -> Maker:
    def aimed_at(target: Target | None) -> Hostile:
        assert target is not None
        return make(target)

    return aimed_at


def pick_target(plan: Plan, wave: int, used: set[str], rng: random.Random) -> Target:
    """An order created at least two waves ago that no earlier aimed message chose (so that each conflict's
    rejection is the only one under its command_id), or any of them once all were chosen."""
    earlier = [c for w in plan.waves[: max(1, wave - 1)] for c in w if not isinstance(c, CancelOrder)]
    pool = [c for c in earlier if c.order_id not in used] or earlier
    chosen = rng.choice(pool)
    used.add(chosen.order_id)
    return Target(plan.creations[chosen.order_id])


async def send_wave(
    producer: AIOKafkaProducer,
    topics: dict[str, str],
    wave: list[ValidCommand],
    hostile: list[Hostile],
    rng: random.Random,
) -> list[Sent]:
    """Send valid commands in their order, hostile ones at random places among them; wait for every ack."""
    slots = sorted(rng.randrange(len(wave) + 1) for _ in hostile)
    futures: list[tuple[Hostile | None, asyncio.Future[object]]] = []
    position = 0
    for index, command in enumerate([*wave, None]):
        while position < len(slots) and slots[position] == index:
            bad = hostile[position]
            futures.append((bad, await producer.send(topics[bad.topic], bad.value, key=bad.key)))
            position += 1
        if command is not None:
            value = command.model_dump_json().encode()
            futures.append(
                (None, await producer.send(topics["commands"], value, key=command.order_id.encode()))
            )
    acks = await asyncio.gather(*(f for _, f in futures))
    return [
        Sent(bad, ack.topic, ack.partition, ack.offset)  # type: ignore[attr-defined]
        for (bad, _), ack in zip(futures, acks, strict=True)
        if bad is not None
    ]


def check_run(
    report: Report,
    plan: Plan,
    alive: bool,
    starts: int,
    exit_code: int,
    balance: int | None,
    intruder_balance: int | None,
    lags: dict[str, int],
) -> None:
    """The verdicts on the entitlement balances, the service process and its consumer groups."""
    report.check(
        "entitlement balance exact", balance == plan.units_left, f"{balance} (expected {plan.units_left})"
    )
    report.check("intruder has no balance", intruder_balance is None, str(intruder_balance))
    report.check("service never crashed or restarted", alive and starts == 1, f"starts={starts}")
    report.check("service drained on SIGTERM", exit_code == 0, f"exit code {exit_code}")
    report.check(
        "consumer groups caught up (lag 0)",
        not any(lags.values()),
        ", ".join(f"{g}={n}" for g, n in lags.items()),
    )


def found_outcome(outcomes: Outcomes, sent: Sent, anomalies: dict[str, list[str]]) -> list[str]:
    """The outcomes of the kind `sent` expects that it got, one string per distinct outcome."""
    expected = sent.hostile.expected
    if expected.kind == "dead_letter":
        letters = outcomes.dead_letters.get((sent.topic, sent.partition, sent.offset), [])
        return sorted({letter.error_type for letter in letters})
    assert expected.correlation is not None
    if expected.kind == "rejection":
        return [r.code.value for r in outcomes.rejections.get(expected.correlation, {}).values()]
    return anomalies.get(expected.correlation, [])


async def wait_for_outcomes(
    tap: TopicTap, outcomes: Outcomes, plan: Plan, sent: list[Sent], within: float
) -> bool:
    """Wait until every valid order reached its status and every published outcome of a hostile message was
    seen (anomalies are not published: see `wait_for_anomalies`); False if that took longer than `within`."""
    published = [s for s in sent if s.hostile.expected.kind != "anomaly"]
    # Messages that share a correlation (a command_id reused by two conflicts) each need their own outcome.
    wanted = Counter(
        s.hostile.expected.correlation or "" for s in published if s.hostile.expected.kind == "rejection"
    )
    total = len(plan.expected) + len(published)
    with progress("waiting for every order's status and every outcome", total) as advance:
        shown = 0

        def accounted() -> bool:
            nonlocal shown
            outcomes.update()
            done = sum(outcomes.latest.get(o, (0, None))[1] is status for o, status in plan.expected.items())
            done += sum(
                bool(outcomes.dead_letters.get((s.topic, s.partition, s.offset)))
                for s in published
                if s.hostile.expected.kind == "dead_letter"
            )
            done += sum(min(n, len(outcomes.rejections.get(c, {}))) for c, n in wanted.items())
            advance(done - shown)
            shown = done
            return done >= total

        try:
            await tap.wait_for(accounted, within)
        except TimeoutError:
            return False
    return True


async def wait_for_anomalies(
    store: OrderStore, sent: list[Sent], within: float = 60.0
) -> dict[str, list[str]]:
    """reply_id → the anomalies recorded for it, once every stray reply has one (or after `within`: the log
    is a Redis stream, which announces nothing, so it is polled)."""
    wanted = {s.hostile.expected.correlation for s in sent if s.hostile.expected.kind == "anomaly"}
    deadline = time.monotonic() + within
    while True:
        found: dict[str, list[str]] = defaultdict(list)
        for record in await store.recent_anomalies(ANOMALY_LOG_LENGTH * 2):
            found[record["input_id"].removeprefix("reply/")].append(record["anomaly"])
        if wanted <= found.keys() or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(0.2)


def judge(
    report: Report,
    plan: Plan,
    outcomes: Outcomes,
    sent: list[Sent],
    anomalies: dict[str, list[str]],
    settled: bool,
) -> None:
    """The verdicts on the outcomes."""
    by_correlation: dict[str, list[Sent]] = defaultdict(list)
    for s in sent:
        if s.hostile.expected.correlation is not None:
            by_correlation[s.hostile.expected.correlation].append(s)
    missing: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    for s in sent:
        expected = s.hostile.expected
        got = found_outcome(outcomes, s, anomalies)
        share = len(by_correlation[expected.correlation]) if expected.correlation else 1
        if len(got) < share:
            missing[s.hostile.category] += 1
        elif len(got) > share or any(g != expected.detail for g in got):
            wrong[f"{s.hostile.category}: {expected.detail} → {','.join(got)}"] += 1
        # Its outcome must be of the one kind it expects: a stray reply or a rejected command dead-lettered as
        # well (or instead) is accounted twice.
        if expected.kind != "dead_letter" and (s.topic, s.partition, s.offset) in outcomes.dead_letters:
            wrong[f"{s.hostile.category}: also dead-lettered"] += 1
    report.check(
        "every hostile message has an outcome",
        not missing and settled,
        f"{len(sent) - sum(missing.values())}/{len(sent)}"
        + (f"; missing {_top(missing)}" if missing else ""),
    )
    report.check(
        "each exactly once, the one its category demands",
        not wrong,
        f"{sum(wrong.values())} wrong" + (f": {_top(wrong)}" if wrong else ""),
    )
    hostile_coordinates = {(s.topic, s.partition, s.offset) for s in sent}
    valid_dead = [c for c in outcomes.dead_letters if c not in hostile_coordinates]
    valid_rejected = [c for c in outcomes.rejections if c not in by_correlation]
    report.check(
        "no valid input dead-lettered or rejected",
        not valid_dead and not valid_rejected,
        f"{len(valid_dead)} dead letters, {len(valid_rejected)} rejections",
    )
    strays = {c for c, found in by_correlation.items() if found[0].hostile.expected.kind == "anomaly"}
    other_anomalies = Counter(a for reply, names in anomalies.items() if reply not in strays for a in names)
    report.check(
        "anomaly log holds the stray replies only",
        not other_anomalies,
        _top(other_anomalies) if other_anomalies else "0 others",
    )
    wrong_status = {
        order_id: (outcomes.latest[order_id][1].label if order_id in outcomes.latest else "none")
        for order_id, status in plan.expected.items()
        if outcomes.latest.get(order_id, (0, None))[1] is not status
    }
    report.check(
        "every valid order reached its expected status",
        not wrong_status,
        f"{len(plan.expected) - len(wrong_status)}/{len(plan.expected)}"
        + (f"; e.g. {list(wrong_status.items())[:3]}" if wrong_status else ""),
    )
    created = [s.hostile.fresh_order_id for s in sent if s.hostile.fresh_order_id in outcomes.latest]
    report.check(
        "no order exists that only hostile input named",
        not created,
        f"{len(created)} created" + (f", e.g. {created[:3]}" if created else ""),
    )


def figures(
    report: Report, outcomes: Outcomes, sent: list[Sent], anomalies: dict[str, list[str]], service_log: Path
) -> None:
    """Messages by category, outcomes by reason, re-publications, and what the service logged."""
    for category, n in sorted(Counter(s.hostile.category for s in sent).items()):
        report.add(f"sent {category}", n, "messages")
    hostile_coordinates = {(s.topic, s.partition, s.offset) for s in sent}
    letters = [ls[0] for c, ls in outcomes.dead_letters.items() if c in hostile_coordinates]
    for error_type, n in sorted(Counter(letter.error_type for letter in letters).items()):
        report.add(f"dead letters {error_type}", n)
    rejections = [r for found in outcomes.rejections.values() for r in found.values()]
    for code, n in sorted(Counter(r.code.value for r in rejections).items()):
        report.add(f"rejections {code}", n)
    for anomaly, n in sorted(Counter(a for names in anomalies.values() for a in names).items()):
        report.add(f"anomalies {anomaly}", n)
    # Allowed by the contract (at least once), but in a run without failures each is a batch handled twice.
    report.add("dead letters published again", sum(len(ls) - 1 for ls in outcomes.dead_letters.values()))
    report.add("rejections published again", outcomes.rejection_records - len(rejections))
    lines = log_lines(service_log)
    report.add("service batches retried", sum(line.get("event") == "batch.retry" for line in lines))
    report.add("service errors logged", sum(line.get("level") in ("ERROR", "CRITICAL") for line in lines))


def log_lines(path: Path) -> list[dict[str, Any]]:
    """A process's JSON log lines (anything else it printed is skipped)."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            parsed = json.loads(line)
            if isinstance(parsed, dict):
                found.append(parsed)
    return found


def _top(counter: Counter[str], n: int = 4) -> str:
    return ", ".join(f"{name} x{count}" for name, count in counter.most_common(n))


def main() -> None:
    options = parser("Hostile input: fuzzed messages mixed into valid traffic; every one accounted for.")
    options.add_argument("--orders", type=int, default=5000, help="valid orders")
    options.add_argument("--fuzz", type=int, default=10_000, help="hostile messages")
    options.add_argument("--seed", type=int, default=None, help="seed of the generator (default: random)")
    options.add_argument(
        "--max-message-bytes",
        type=int,
        default=16 * 1024,
        help="the service's ORDERS_MAX_MESSAGE_BYTES; small by default so that oversized messages stay cheap",
    )
    args = options.parse_args()
    if args.smoke:
        args.orders, args.fuzz = 200, 400
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    console.print(f"seed {args.seed} (the same hostile messages again: --seed {args.seed})")
    run(
        lambda run_: benchmark(run_, args),
        args,
        max_message_bytes=args.max_message_bytes,
        # No order may time out while the service is busy with hostile input: its status is the verdict.
        confirmation_timeout_seconds=3600.0,
        sim_fail_resources=FULL_RESOURCE,
    )


if __name__ == "__main__":
    main()
