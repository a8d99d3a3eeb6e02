"""The reliability benchmarks' shared workload, processes under test, observation and verdicts.

Crash loop, Redis outage and Replay all send the same kind of mixed order traffic through the real broker
to `orders service`, `orders resource-sim` and `orders relay` child processes, disturb them in their own
way, and then hold the outcome to the same verdicts (`verify_outcome`):

- every order reached the final status the workload implies (none lost, none stuck Pending);
- each order's status events run 1..n without a gap, one event id per sequence, n as expected;
- every entitlement balance is exactly what the walk-ins and their refunds imply;
- every outbox is empty; nothing was rejected or dead-lettered (all the traffic is valid);
- every status event reached the webhook receiver, each order's in sequence order.
"""

import argparse
import asyncio
import contextlib
import logging
import random
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from bench.harness import OrdersProcess, Report, Run, console, progress
from contracts.commands import CancelOrder, ChangeOrder, CreatePrebooking, RecordWalkIn
from contracts.events import CommandRejected, DeadLetter, OrderStatusChanged
from contracts.statuses import OrderStatus
from service.config import Settings
from service.domain.order import Order
from service.store.entitlements import EntitlementStore
from service.store.keys import order_key, outbox_key
from service.store.outbox import OutboxEntry
from service.store.webhook_endpoints import EndpointStore
from testkit.factories import prebooking, unique, walk_in
from testkit.kafka_tap import TopicTap
from testkit.webhook_receiver import WebhookReceiver

Command = CreatePrebooking | RecordWalkIn | CancelOrder

CLIENT_ID = "bench-client"
ACCEPTING_RESOURCES = ("RES-OK-1", "RES-OK-2", "RES-OK-3")
REFUSED_RESOURCE = "RES-FULL"
"""The simulator answers `failed` (SOLD_OUT) for every reservation here."""
WAITLISTING_RESOURCE = "RES-WAITLIST-THEN-OK"
"""The simulator answers `waitlisted`, then `confirmed`, for every reservation here."""
CREDENTIALS = 16
"""Walk-ins spread over this many credentials, each with a balance of its own."""

PREBOOKING_SHARE = 0.7
REFUSED_SHARE = 0.1
"""Of the prebookings: one item (of one or two) at the refusing resource, so the order fails."""
TWO_ITEM_SHARE = 0.2
"""Of the prebookings: two items, so two reservations and two replies."""
STAFF_CANCELLED_SHARE = 0.25
"""Of the walk-ins: cancelled afterwards by the resource's staff, which refunds the entitlement."""
WAITLISTED_SHARE = 0.1
"""Of the prebookings, with `lifecycle`: one item at the waitlisting resource (Pending twice, Confirmed)."""
NO_SHOW_SHARE = 0.1
"""Of the prebookings, with `lifecycle`: dated two days ago, so they are no-shows once confirmed (Pending,
Confirmed, Confirmed with NO_SHOW): the no-show timer fires during the run."""
CHANGED_SHARE = 0.1
"""Of the other confirmed prebookings, with `lifecycle`: their first item moved to another resource and the
next day once the order is Confirmed (Pending, Confirmed, then CHANGE_REQUESTED and ORDER_CHANGED)."""
CANCEL_DISTANCE = 300
"""A cancellation is sent up to this many commands after its walk-in (same key, so the same partition)."""

PIPELINE_SETTINGS: dict[str, Any] = {
    "sim_fail_resources": REFUSED_RESOURCE,
    "sim_waitlist_then_confirm_resources": WAITLISTING_RESOURCE,
    # Restarts and outages take seconds each: no prebooking may time out meanwhile.
    "confirmation_timeout_seconds": 3600.0,
    # A killed consumer's partitions move to its successor after this, not after the default 10 s.
    "kafka_session_timeout_ms": 3000,
    # A killed instance's claimed deadlines fire again after this, not after the default 30 s: until then
    # the outbox of a deadline batch killed before its acknowledgement waits (see `await_outcome`).
    "timer_lease_seconds": 3.0,
    "kafka_heartbeat_interval_ms": 500,
    # The receiver is on loopback and plain http.
    "relay_require_https": False,
    "relay_allowed_networks": ["127.0.0.0/8"],
    # A killed relay's claims lapse after 2 x timeout + 5 s; the receiver answers at once anyway.
    "relay_timeout_seconds": 1.0,
    "relay_poll_seconds": 0.02,
    "relay_concurrency_per_endpoint": 32,
    # Nothing may die for want of retries while a process is down: retry quickly, for a long time.
    "relay_retry_schedule_seconds": [0.2, 0.5, 1, 2, 5, 10, 30, 60, 120],
    "relay_jitter": 0.0,
    "relay_breaker_failures": 100_000,
}
"""Settings overrides for `harness.run` that every reliability benchmark's processes share."""


# --- the workload -----------------------------------------------------------------------------------------


@dataclass
class Workload:
    """The commands to send, in order, and what each order must end as."""

    commands: list[Command]
    expected_status: dict[str, OrderStatus]
    expected_events: dict[str, int]
    """How many status events each order must have: its sequences run 1..this."""
    granted: dict[str, int]
    """Units granted per credential before the run."""
    expected_balance: dict[str, int]
    changes: dict[str, ChangeOrder] = field(default_factory=dict)
    """Per order, the change to send once the order is Confirmed (`Observation` sends them)."""
    waitlisted: int = 0
    """Prebookings waitlisted before their confirmation."""
    no_shows: int = 0
    """Prebookings that become no-shows once confirmed."""

    @property
    def orders(self) -> int:
        return len(self.expected_status)

    def composition(self) -> dict[str, int]:
        """How many orders of each kind, for the report."""
        kinds: dict[str, int] = defaultdict(int)
        for status in self.expected_status.values():
            kinds[status.label] += 1
        return dict(kinds)


def build_workload(orders: int, rng: random.Random, *, lifecycle: bool = False) -> Workload:
    """Prebookings (most confirmed, some refused → Failed), walk-ins, and staff cancellations of walk-ins;
    with `lifecycle`, also prebookings waitlisted before their confirmation, no-shows, and changes."""
    creations: list[Command] = []
    changes: dict[str, ChangeOrder] = {}
    waitlists = no_shows = 0
    expected_status: dict[str, OrderStatus] = {}
    expected_events: dict[str, int] = {}
    consumed: dict[str, int] = defaultdict(int)
    cancels: list[CancelOrder] = []
    credentials = [f"CARD-{n:02d}" for n in range(CREDENTIALS)]
    for _ in range(orders):
        if rng.random() < PREBOOKING_SHARE:
            resources = [rng.choice(ACCEPTING_RESOURCES)]
            if rng.random() < TWO_ITEM_SHARE:
                resources.append(rng.choice(ACCEPTING_RESOURCES))
            refused = rng.random() < REFUSED_SHARE
            if refused:
                resources[rng.randrange(len(resources))] = REFUSED_RESOURCE
            waitlisted = lifecycle and not refused and rng.random() < WAITLISTED_SHARE
            if waitlisted:
                resources[0] = WAITLISTING_RESOURCE
            booking = prebooking(*resources, client_id=CLIENT_ID, passengers=rng.randint(1, 3))
            no_show = lifecycle and not refused and rng.random() < NO_SHOW_SHARE
            if no_show:
                booking = _dated(booking, datetime.now(UTC).date() - timedelta(days=2))
            command: Command = booking
            waitlists, no_shows = waitlists + int(waitlisted), no_shows + int(no_show)
            expected_status[command.order_id] = OrderStatus.FAILED if refused else OrderStatus.CONFIRMED
            # Pending, then Confirmed or Failed; a waitlisting and a no-show add one event each.
            expected_events[command.order_id] = 2 + int(waitlisted) + int(no_show)
            if lifecycle and not (refused or waitlisted or no_show) and rng.random() < CHANGED_SHARE:
                changes[booking.order_id] = _change_of(booking, rng)
                expected_events[booking.order_id] += 2  # CHANGE_REQUESTED, then ORDER_CHANGED
        else:
            credential = rng.choice(credentials)
            command = walk_in(credential=credential, client_id=CLIENT_ID, passengers=rng.randint(1, 3))
            expected_status[command.order_id] = OrderStatus.USED
            expected_events[command.order_id] = 1
            if rng.random() < STAFF_CANCELLED_SHARE:
                cancels.append(
                    CancelOrder(
                        command_id=unique("cmd"),
                        client_id=CLIENT_ID,
                        order_id=command.order_id,
                        initiated_by="RESOURCE_STAFF",
                    )
                )
                expected_status[command.order_id] = OrderStatus.CANCELLED
                expected_events[command.order_id] = 2  # Used, then Cancelled (refunded)
            else:
                consumed[credential] += len(command.passengers)
        creations.append(command)
    rng.shuffle(creations)
    # A cancellation goes some way after its walk-in; sharing the key, it stays behind it on the partition.
    position = {c.order_id: float(n) for n, c in enumerate(creations)}
    placed = [(position[c.order_id], c) for c in creations]
    placed += [(position[c.order_id] + rng.uniform(0.5, CANCEL_DISTANCE), c) for c in cancels]
    placed.sort(key=lambda p: p[0])
    # Enough units that no walk-in is refused, and a balance that shows any unit taken or given back twice.
    granted = {credential: 1000 + 3 * orders for credential in credentials}
    return Workload(
        commands=[c for _, c in placed],
        expected_status=expected_status,
        expected_events=expected_events,
        granted=granted,
        expected_balance={c: units - consumed[c] for c, units in granted.items()},
        changes=changes,
        waitlisted=waitlists,
        no_shows=no_shows,
    )


def _change_of(booking: CreatePrebooking, rng: random.Random) -> ChangeOrder:
    """Move the booking's first item to another accepting resource, the day after."""
    item = booking.items[0]
    return ChangeOrder(
        command_id=unique("cmd"),
        client_id=CLIENT_ID,
        order_id=booking.order_id,
        order_item_id=item.order_item_id or "ITEM-1",
        service_date=item.service_date + timedelta(days=1),
        resource_id=rng.choice([r for r in ACCEPTING_RESOURCES if r != item.resource_id]),
    )


def _dated(command: CreatePrebooking, service_date: date) -> CreatePrebooking:
    items = [item.model_copy(update={"service_date": service_date}) for item in command.items]
    return command.model_copy(update={"items": items})


async def grant_entitlements(redis: "Redis", workload: Workload) -> None:
    """Give every credential of the workload its starting balance."""
    store = EntitlementStore(redis)
    for credential, units in workload.granted.items():
        await store.grant(CLIENT_ID, credential, units)


def add_workload_arguments(parser: argparse.ArgumentParser, orders: int, rate: float) -> None:
    """`--orders`, `--rate`, `--seed`, `--stall-seconds` and `--keep-logs`, with this benchmark's defaults."""
    parser.add_argument("--orders", type=int, default=orders, help=f"orders in the workload ({orders:,})")
    parser.add_argument("--rate", type=float, default=rate, help=f"orders sent per second ({rate:g})")
    parser.add_argument("--seed", type=int, default=None, help="seed of the mix and of the disturbances")
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=120.0,
        help="give up waiting for the outcome after this long without progress (120)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs of a passed run")


@dataclass(frozen=True)
class Options:
    """The workload options every reliability benchmark takes."""

    orders: int
    rate: float
    """Orders per second: the commands are spread evenly over `orders / rate` seconds."""
    seed: int
    stall_seconds: float
    keep_logs: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Options":
        return cls(
            orders=args.orders,
            rate=args.rate,
            seed=args.seed if args.seed is not None else random.randrange(2**32),
            stall_seconds=args.stall_seconds,
            keep_logs=args.keep_logs,
        )

    @property
    def send_seconds(self) -> float:
        return self.orders / self.rate

    def parameters(self) -> dict[str, Any]:
        """For the report."""
        return {"orders": self.orders, "rate": self.rate, "seed": self.seed}


# --- the processes under test ------------------------------------------------------------------------------


def service_groups(settings: Settings) -> dict[str, list[str]]:
    """The service's consumer groups and the topics each reads (see `service.consumers.routes`)."""
    return {
        f"{settings.consumer_group}.commands": [settings.topic_commands],
        f"{settings.consumer_group}.replies": [settings.topic_resource_replies],
    }


class Pipeline:
    """`orders service` (two consumers), `orders resource-sim`, optionally `orders relay`, and the webhook
    receiver that the relay delivers to through one endpoint registered for the workload's client.

    `instances` service and relay processes each share their consumer groups (scale-out); `service` and
    `relay` are the first of them."""

    def __init__(
        self,
        run: Run,
        logs: Path,
        *,
        relay: bool = True,
        service_env: dict[str, str] | None = None,
        instances: int = 1,
    ):
        env = run.environ()
        self.run = run

        def log(name: str, n: int) -> Path:
            return logs / (f"{name}.log" if n == 0 else f"{name}-{n + 1}.log")

        service_env = {**env, **(service_env or {})}
        self.services = [
            OrdersProcess("service", service_env, log("service", n), 2) for n in range(instances)
        ]
        self.service = self.services[0]
        self.simulator = OrdersProcess("resource-sim", env, logs / "resource-sim.log")
        self.relays = (
            [OrdersProcess("relay", env, log("relay", n)) for n in range(instances)] if relay else []
        )
        self.relay = self.relays[0] if relay else None
        self.receiver = WebhookReceiver() if relay else None

    @property
    def processes(self) -> list[OrdersProcess]:
        return [self.simulator, *self.relays, *self.services]

    async def start(self) -> None:
        """Start the receiver, register its endpoint, start every process and wait until all consume."""
        if self.receiver is not None:
            # A relay killed mid-request makes aiohttp log the lost connection with a traceback: expected.
            logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
            await self.receiver.start()
            redis = Redis.from_url(self.run.settings.redis_url.get_secret_value())
            try:
                await EndpointStore(redis).create(CLIENT_ID, self.receiver.url, datetime.now(UTC))
            finally:
                await redis.aclose()
        started = time.monotonic()
        for process in self.processes:
            await process.start()
        for process in self.processes:
            await process.wait_ready()
        names = ", ".join(p.name for p in self.processes)
        announce(f"{names} consuming after {time.monotonic() - started:.1f} s")

    async def stop(self) -> dict[str, int]:
        """SIGTERM every process that still runs (the service first: it feeds the others); exit codes."""
        codes = {}
        started = time.monotonic()
        for process in reversed(self.processes):
            if process.process is not None:
                codes[process.name] = await process.stop()
        announce(f"stopped in {time.monotonic() - started:.1f} s")
        if self.receiver is not None:
            await self.receiver.stop()
        return codes

    async def abort(self) -> None:
        """SIGKILL whatever still runs (after a failure; a no-op after `stop`)."""
        for process in self.processes:
            if process.process is not None and process.process.returncode is None:
                await process.kill()
        if self.receiver is not None:
            await self.receiver.stop()


def log_directory(benchmark: str) -> Path:
    """Where the processes write their logs: kept when the run fails (see `finish`), removed otherwise."""
    return Path(tempfile.mkdtemp(prefix=f"bench-{benchmark}-"))


def finish(report: Report, logs: Path, keep: bool = False) -> Report:
    """Remove the process logs of a passed run (unless asked to `keep` them); point at them otherwise."""
    if report.passed and not keep:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        report.add("process logs", str(logs))
    return report


# --- sending ----------------------------------------------------------------------------------------------

TICK_SECONDS = 0.05


async def send_paced(bootstrap_servers: str, topic: str, workload: Workload, seconds: float) -> float:
    """Send the workload's commands evenly over `seconds`, in order; returns how long it took."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    commands = workload.commands
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    try:
        with progress("sending commands", len(commands)) as advance:
            while sent < len(commands):
                due = min(len(commands), int((loop.time() - started) / seconds * len(commands)) + 1)
                wave = commands[sent:due]
                acknowledged = [
                    await producer.send(topic, c.model_dump_json().encode(), key=c.order_id.encode())
                    for c in wave
                ]
                await asyncio.gather(*acknowledged)
                advance(len(wave))
                sent = due
                await asyncio.sleep(TICK_SECONDS)  # pacing: the load is spread over the run
    finally:
        await producer.stop()
    return loop.time() - started


# --- observing the outcome ---------------------------------------------------------------------------------


class StatusLedger:
    """Everything the service published, folded in incrementally as the tap reads it."""

    def __init__(self, tap: TopicTap, run: Run, workload: Workload) -> None:
        self._tap = tap
        self._topic = run.settings.topic_status_changed
        self._expected = workload.expected_status
        self._expected_events = workload.expected_events
        self._folded = 0
        self.records = 0
        self.events: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.latest: dict[str, tuple[int, OrderStatus]] = {}
        self.settled = 0
        """Orders whose latest event shows the final status expected of them."""

    def fold(self) -> None:
        """Take in the records read since the last call."""
        records = self._tap.records[self._topic]
        for record in records[self._folded :]:
            event = OrderStatusChanged.model_validate_json(record.value)
            self.events[event.order_id][event.sequence].add(event.event_id)
            before = self.latest.get(event.order_id)
            if before is None or event.sequence > before[0]:
                expected = self._expected.get(event.order_id)
                was_settled = (
                    before is not None
                    and before[1] is expected
                    and before[0] == self._expected_events[event.order_id]
                )
                # Settled: the expected status at the expected last sequence (a waitlisting or a no-show
                # keeps the status, so the status alone does not say the order is done).
                now_settled = (
                    event.status is expected and event.sequence == self._expected_events[event.order_id]
                )
                self.settled += int(now_settled) - int(was_settled)
                self.latest[event.order_id] = (event.sequence, event.status)
        self.records = self._folded = len(records)

    @property
    def event_ids(self) -> set[str]:
        return {i for sequences in self.events.values() for ids in sequences.values() for i in ids}

    def history(self, order_id: str) -> str:
        """The order's events as published, `sequence status[/reason]` each (copies once), and how many
        were expected: what a failed sequence check shows of its first order."""
        seen: dict[int, str] = {}
        for record in self._tap.records[self._topic]:
            event = OrderStatusChanged.model_validate_json(record.value)
            if event.order_id == order_id:
                reason = f"/{event.reason}" if event.reason else ""
                seen.setdefault(event.sequence, f"{event.sequence} {event.status.name}{reason}")
        events = ", ".join(seen[n] for n in sorted(seen))
        return f"{order_id}: {events or 'none'} (expected {self._expected_events.get(order_id)})"

    def republished(self) -> int:
        """Records beyond one per distinct event: what crash recovery published again."""
        return self.records - len(self.event_ids)


class DeliveryLedger:
    """The webhook receiver's successful requests, folded in incrementally."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self.receiver = receiver
        self._folded = 0
        self.delivered: set[str] = set()
        self.requests = 0
        self.sequences: dict[str, list[int]] = defaultdict(list)
        """Per order, the sequence of each event on its first delivery, in arrival order."""

    def fold(self) -> None:
        received = self.receiver.received
        for request in received[self._folded :]:
            if request.status >= 300:
                continue
            self.requests += 1
            if request.webhook_id not in self.delivered:
                self.delivered.add(request.webhook_id)
                self.sequences[request.body["order_id"]].append(int(request.body["sequence"]))
        self._folded = len(received)

    def duplicates(self) -> int:
        """Successful requests beyond one per event (at least once allows them)."""
        return self.requests - len(self.delivered)


@dataclass
class Observation:
    """The tap on the service's output topics and the ledgers over it and over the webhook receiver.

    It also sends the workload's changes, each once the tap shows its order Confirmed (a change needs a
    confirmed reservation to move): the one part of the workload that depends on what the pipeline did,
    sent beside the paced commands and whatever disturbs the processes."""

    tap: TopicTap
    statuses: StatusLedger
    deliveries: DeliveryLedger | None
    redis_url: str
    changing: "asyncio.Task[None] | None" = None

    @classmethod
    async def start(cls, run: Run, workload: Workload, pipeline: Pipeline) -> "Observation":
        settings = run.settings
        tap = TopicTap(
            settings.kafka_bootstrap_servers,
            [settings.topic_status_changed, settings.topic_command_rejected, settings.topic_dead_letter],
        )
        await tap.start()
        receiver = pipeline.receiver
        observation = cls(
            tap,
            StatusLedger(tap, run, workload),
            DeliveryLedger(receiver) if receiver is not None else None,
            settings.redis_url.get_secret_value(),
        )
        if workload.changes:
            observation.changing = asyncio.create_task(observation._send_changes(run.settings, workload))
        return observation

    async def _send_changes(self, settings: Settings, workload: Workload) -> None:
        unsent = dict(workload.changes)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
        await producer.start()

        def confirmed() -> list[ChangeOrder]:
            self.statuses.fold()
            latest = self.statuses.latest
            return [c for o, c in unsent.items() if latest.get(o, (0, None))[1] is OrderStatus.CONFIRMED]

        try:
            while unsent:
                # No limit of its own: `await_outcome` gives up on a run that stalls, and `stop` ends this.
                for change in await self.tap.wait_for(confirmed, timeout=24 * 3600):
                    await producer.send_and_wait(
                        settings.topic_commands, change.model_dump_json().encode(), change.order_id.encode()
                    )
                    del unsent[change.order_id]
        finally:
            await producer.stop()

    async def stop(self) -> None:
        if self.changing is not None:
            self.changing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.changing
        await self.tap.stop()


async def _await_progress(
    wait_for: Callable[[Callable[[], bool], float], Awaitable[Any]],
    measure: Callable[[], int],
    target: int,
    description: str,
    stall_seconds: float,
) -> bool:
    """Wait until `measure()` reaches `target`, re-checked by `wait_for` on every change it sees; give up
    after `stall_seconds` without any progress. Returns whether the target was reached."""
    with progress(description, target) as advance:
        shown = 0

        def advanced() -> bool:
            nonlocal shown
            value = measure()
            advance(value - shown)
            changed, shown = value != shown, value
            return changed or value >= target

        advanced()
        while shown < target:
            try:
                await wait_for(advanced, stall_seconds)
            except TimeoutError:
                return False
        return True


async def await_outcome(
    observation: Observation, workload: Workload, stall_seconds: float
) -> dict[str, float]:
    """Wait until every order is settled, every status event delivered and every outbox drained, or until
    progress stalls.

    Returns how long settling and delivering took (seconds); the verdicts say what is missing if it stalled.
    """
    started = time.monotonic()
    statuses = observation.statuses

    def settled() -> int:
        statuses.fold()
        return statuses.settled

    await _await_progress(observation.tap.wait_for, settled, workload.orders, "orders settled", stall_seconds)
    timings = {"settle_seconds": time.monotonic() - started}
    deliveries = observation.deliveries
    if deliveries is not None:
        # Every order is final now, so the status topic holds every event there will be.
        statuses.fold()
        wanted = statuses.event_ids

        def delivered() -> int:
            deliveries.fold()
            return len(wanted & deliveries.delivered)

        await _await_progress(
            deliveries.receiver.wait_for, delivered, len(wanted), "webhooks delivered", stall_seconds
        )
        timings["deliver_seconds"] = time.monotonic() - started
    await _await_outboxes_drained(observation.redis_url, list(workload.expected_status), stall_seconds)
    return timings


async def _await_outboxes_drained(redis_url: str, order_ids: list[str], limit_seconds: float) -> None:
    """Wait, at most `limit_seconds`, until none of the orders has an outbox entry left.

    A batch killed after its publication but before its outbox's acknowledgement has its events on the
    topic already, and its outbox is carried out again when its input comes back: at once for a Kafka input
    (its offset was not committed), only once its lease lapses for a deadline (`timer_lease_seconds`).
    Stopping the processes before then would leave an outbox on its way, not a lost one, and the verdict
    could not tell the two apart. Redis announces nothing here, so it is read again every 0.2 s."""
    redis = Redis.from_url(redis_url)
    try:
        left = await _nonempty_outboxes(redis, order_ids)
        deadline = time.monotonic() + limit_seconds
        while left and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            left = await _nonempty_outboxes(redis, left)
    finally:
        await redis.aclose()


async def _nonempty_outboxes(redis: Redis, order_ids: list[str]) -> list[str]:
    left: list[str] = []
    for start in range(0, len(order_ids), 1000):
        chunk = order_ids[start : start + 1000]
        async with redis.pipeline(transaction=False) as pipe:
            for order_id in chunk:
                pipe.hlen(outbox_key(CLIENT_ID, order_id))
            sizes = await pipe.execute()
        left += [order_id for order_id, size in zip(chunk, sizes, strict=True) if size]
    return left


# --- the verdicts -----------------------------------------------------------------------------------------


@dataclass
class StoredOutcome:
    """What Redis holds for the workload's orders and credentials after the run."""

    statuses: dict[str, OrderStatus | None] = field(default_factory=dict)
    nonempty_outboxes: list[str] = field(default_factory=list)
    first_outbox: str = ""
    """What the first of them holds: each entry's number, destination and key (which message was left)."""
    balances: dict[str, int | None] = field(default_factory=dict)


async def read_stored_outcome(redis: "Redis", workload: Workload) -> StoredOutcome:
    """Every order's stored status and outbox size, and every credential's balance."""
    found = StoredOutcome()
    order_ids = list(workload.expected_status)
    for start in range(0, len(order_ids), 1000):
        chunk = order_ids[start : start + 1000]
        async with redis.pipeline(transaction=False) as pipe:
            for order_id in chunk:
                pipe.hget(order_key(CLIENT_ID, order_id), "state")
            states = await pipe.execute()
        for order_id, state in zip(chunk, states, strict=True):
            found.statuses[order_id] = Order.from_json(state).status if state else None
    found.nonempty_outboxes = await _nonempty_outboxes(redis, order_ids)
    if found.nonempty_outboxes:
        left: dict[bytes, bytes] = await redis.hgetall(outbox_key(CLIENT_ID, found.nonempty_outboxes[0]))  # type: ignore[assignment]
        entries = [(number, OutboxEntry.decode(raw)) for number, raw in sorted(left.items())]
        found.first_outbox = ", ".join(f"{n.decode()} {e.destination} {e.key}" for n, e in entries)
    entitlements = EntitlementStore(redis)
    for credential in workload.granted:
        found.balances[credential] = await entitlements.balance(CLIENT_ID, credential)
    return found


def _examples(items: list[str], count: int = 3) -> str:
    return ", ".join(items[:count]) + (" …" if len(items) > count else "")


async def verify_outcome(report: Report, run: Run, workload: Workload, observation: Observation) -> None:
    """Hold the run's outcome to the crash-loop verdicts; the processes must have stopped."""
    statuses = observation.statuses
    statuses.fold()
    redis = Redis.from_url(run.settings.redis_url.get_secret_value())
    try:
        stored = await read_stored_outcome(redis, workload)
    finally:
        await redis.aclose()

    lost, stuck, wrong = [], [], []
    for order_id, expected in workload.expected_status.items():
        status = stored.statuses[order_id]
        published = statuses.latest.get(order_id, (0, None))[1]
        if status is None:
            lost.append(order_id)
        elif status is OrderStatus.PENDING:
            stuck.append(order_id)
        elif status is not expected or published is not expected:
            wrong.append(order_id)
    report.check(
        "orders in their expected final status",
        not (lost or stuck or wrong),
        f"{workload.orders - len(lost) - len(stuck) - len(wrong):,} of {workload.orders:,}; lost {len(lost)},"
        f" stuck {len(stuck)}, wrong {len(wrong)} {_examples(lost + stuck + wrong)}".rstrip(),
    )

    gaps, doubled = [], []
    for order_id, expected_events in workload.expected_events.items():
        sequences = statuses.events.get(order_id, {})
        if sorted(sequences) != list(range(1, expected_events + 1)):
            gaps.append(order_id)
        if any(len(ids) != 1 for ids in sequences.values()):
            doubled.append(order_id)
    report.check(
        "event sequences 1..n, one event id each",
        not (gaps or doubled),
        f"gaps or wrong length {len(gaps)}, two ids for one sequence {len(doubled)}"
        f" {_examples(gaps + doubled)}".rstrip()
        + (f"; {statuses.history((gaps + doubled)[0])}" if gaps or doubled else ""),
    )

    off = [c for c, balance in workload.expected_balance.items() if stored.balances[c] != balance]
    report.check(
        "entitlement balances exact",
        not off,
        f"{len(workload.expected_balance) - len(off)} of {len(workload.expected_balance)} credentials"
        + "".join(f"; {c}: {stored.balances[c]} ≠ {workload.expected_balance[c]}" for c in off[:3]),
    )
    report.check(
        "outboxes empty",
        not stored.nonempty_outboxes,
        f"{len(stored.nonempty_outboxes)} not empty {_examples(stored.nonempty_outboxes)}".rstrip()
        + (f"; the first holds {stored.first_outbox}" if stored.first_outbox else ""),
    )
    settings = run.settings
    rejected = observation.tap.decoded(settings.topic_command_rejected, CommandRejected)
    dead = observation.tap.decoded(settings.topic_dead_letter, DeadLetter)
    report.check(
        "no rejections or dead letters",
        not rejected and not dead,
        f"{len(rejected)} rejected, {len(dead)} dead letters"
        + "".join(f"; {r.code} {r.order_id}" for r in rejected[:3]),
    )
    report.add("orders", workload.orders)
    for kind, count in sorted(workload.composition().items()):
        report.add(f"  of them {kind}", count)
    if workload.changes:
        report.add("  of them waitlisted before Confirmed", workload.waitlisted)
        report.add("  of them no-shows once Confirmed", workload.no_shows)
        report.add("  of them changed once Confirmed", len(workload.changes))
    report.add("status events", len(statuses.event_ids))
    report.add("events re-published", statuses.republished())

    deliveries = observation.deliveries
    if deliveries is None:
        return
    deliveries.fold()
    missing = statuses.event_ids - deliveries.delivered
    report.check(
        "webhook deliveries missing", not missing, f"{len(missing):,} of {len(statuses.event_ids):,}"
    )
    disordered = [o for o, seen in deliveries.sequences.items() if seen != sorted(seen)]
    report.check(
        "webhooks in sequence order per order",
        not disordered,
        f"{len(disordered)} orders out of order {_examples(disordered)}".rstrip(),
    )
    report.add("webhook requests", deliveries.requests)
    report.add("duplicate deliveries", deliveries.duplicates())


def check_clean_exits(report: Report, codes: dict[str, int]) -> None:
    """Every process drained and exited 0 on SIGTERM at the end."""
    report.check(
        "processes exit 0 on SIGTERM",
        all(code == 0 for code in codes.values()),
        ", ".join(f"{name} {code}" for name, code in codes.items()),
    )


def announce(message: str) -> None:
    """A line above the progress bar: what was done to the processes, and when."""
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}")
