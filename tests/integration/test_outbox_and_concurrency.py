"""The processor against the real Redis: crash between commit and publish, and concurrent writers."""

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from aiokafka import ConsumerRecord
from redis.asyncio import Redis

from contracts.commands import CreatePrebooking
from contracts.events import DeadLetter, OrderStatusChanged
from contracts.resources import ReservationConfirmed
from contracts.statuses import OrderStatus
from service.consumers.deadlines import DeadlineWatcher
from service.consumers.inbound import command_input, reply_input
from service.consumers.processor import OrderProcessor
from service.domain.decide import decide
from service.domain.local_effects import Effect
from service.domain.policy import Policy
from service.store.command_outcomes import CommandOutcomeStore
from service.store.effect_runner import LocalEffects
from service.store.entitlements import EntitlementStore
from service.store.keys import outbox_key
from service.store.orders import OrderStore, Transition
from service.store.outbox import Destination, OutboxEntry
from service.store.timers import TimerStore
from testkit.factories import prebooking, unique


@pytest.fixture
def redis(store_redis: Redis) -> Redis:
    """Every test here runs on a single node and on a Redis Cluster."""
    return store_redis


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SILENT = "RES-NEVER-ANSWERS"


class RecordingPublisher:
    """Keeps what it is asked to publish; fails the first `failures` calls like a broker that went away."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.published: list[OutboxEntry] = []

    async def publish(self, entries: Sequence[OutboxEntry]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        self.published.extend(entries)

    def events(self) -> list[OrderStatusChanged]:
        return [
            OrderStatusChanged.model_validate_json(e.value)
            for e in self.published
            if e.destination is Destination.STATUS_CHANGED
        ]


def processor(
    redis: Redis, publisher: RecordingPublisher, clock: Callable[[], datetime] = lambda: NOW
) -> OrderProcessor:
    """A processor on the real Redis whose publisher is a recording stand-in for the broker."""
    orders, entitlements, timers = OrderStore(redis), EntitlementStore(redis), TimerStore(redis)
    effects = LocalEffects(entitlements, timers, orders, CommandOutcomeStore(redis))
    return OrderProcessor(
        store=orders,
        entitlements=entitlements,
        effects=effects,
        publisher=publisher,
        clock=clock,
        policy=Policy(),
    )


def deadline_watcher(
    redis: Redis, publisher: RecordingPublisher, at: datetime, batch: int = 1000
) -> DeadlineWatcher:
    """A deadline watcher whose clock stands at `at`, over a processor like `processor`'s (30 s leases)."""
    return DeadlineWatcher(
        timers=TimerStore(redis),
        processor=processor(redis, publisher, clock=lambda: at),
        clock=lambda: at,
        poll_seconds=0.05,
        lease_seconds=30,
        batch=batch,
    )


async def test_events_stored_before_a_failed_publish_are_published_on_redelivery(redis: Redis) -> None:
    """A crash between the Redis commit and the broker's ack loses nothing: the re-delivered batch publishes
    the stored events under the same event ids, and applies nothing twice."""
    store = OrderStore(redis)
    command = command_input(prebooking("RES-A", "RES-B"))
    broken = RecordingPublisher(failures=1)

    with pytest.raises(ConnectionError):
        await processor(redis, broken).process([command])
    assert await redis.hlen(outbox_key(command.client_id, command.order_id)) == 6, (
        "event, 2 reserves, timer, index, outcome wait"
    )
    outcomes, sent = CommandOutcomeStore(redis), command.message
    assert isinstance(sent, CreatePrebooking)
    assert await outcomes.get(sent.client_id, sent.command_id) is None, "recorded only after publication"

    healthy = RecordingPublisher()
    await processor(redis, healthy).process([command])
    applied = await outcomes.get(sent.client_id, sent.command_id)
    assert applied is not None and (applied.outcome, applied.sequences) == ("applied", [1])

    assert [e.sequence for e in healthy.events()] == [1]
    assert [e.destination for e in healthy.published].count(Destination.RESOURCE_REQUESTS) == 2
    assert await redis.hlen(outbox_key(command.client_id, command.order_id)) == 0
    stored = await store.get(command.client_id, command.order_id)
    assert stored is not None and stored.sequence == 1

    await processor(redis, healthy).process([command])
    assert len(healthy.published) == 3, "a third delivery of an acknowledged command publishes nothing"


async def test_a_batch_applies_several_inputs_of_one_order_in_order(redis: Redis) -> None:
    """Create and both confirmations in one batch: each input sees the state the previous one left."""
    create = prebooking("RES-A", "RES-B")
    replies = [
        reply_input(
            ReservationConfirmed(
                reply_id=f"r-{item}",
                order_id=create.order_id,
                reservation_id=f"{create.client_id}/{create.order_id}/{item}",
            )
        )
        for item in ("ITEM-1", "ITEM-2")
    ]
    publisher = RecordingPublisher()

    await processor(redis, publisher).process([command_input(create), *replies])

    assert [(e.sequence, e.status) for e in publisher.events()] == [
        (1, OrderStatus.PENDING),
        (2, OrderStatus.CONFIRMED),
    ]


class HangingPublisher:
    """A broker that never acknowledges."""

    async def publish(self, entries: Sequence[OutboxEntry]) -> None:
        await asyncio.Event().wait()


async def test_a_batch_that_hangs_fails_within_its_time_limit_and_keeps_its_outbox(redis: Redis) -> None:
    """No per-reply timeout on the hot path's Redis client: the batch as a whole is time-limited, and what it
    had not carried out stays in the outbox for the re-delivery."""
    create = command_input(prebooking())
    orders, entitlements, timers = OrderStore(redis), EntitlementStore(redis), TimerStore(redis)
    effects = LocalEffects(entitlements, timers, orders, CommandOutcomeStore(redis))
    hanging = OrderProcessor(
        store=orders,
        entitlements=entitlements,
        effects=effects,
        publisher=HangingPublisher(),
        clock=lambda: NOW,
        policy=Policy(),
        timeout_seconds=0.3,
    )

    with pytest.raises(TimeoutError):
        await hanging.process([create])

    assert await redis.hlen(outbox_key(create.client_id, create.order_id)) > 0
    publisher = RecordingPublisher()
    await processor(redis, publisher).process([create])
    assert [e.status for e in publisher.events()] == [OrderStatus.PENDING]
    assert await redis.hlen(outbox_key(create.client_id, create.order_id)) == 0


async def test_stale_version_is_refused_by_the_commit_script(redis: Redis) -> None:
    """A transition decided on a state that changed meanwhile is refused, not applied."""
    store = OrderStore(redis)
    create = command_input(prebooking())
    await processor(redis, RecordingPublisher()).process([create])

    stale = Transition(
        client_id=create.client_id,
        order_id=create.order_id,
        input_id="reply/late",
        fingerprint="f",
        expected_version="",
        new_state=b"{}",
    )
    [result] = await store.commit([stale])

    assert result.outcome == "conflict"
    assert result.detail == create.input_id


async def test_a_commit_answers_the_numbers_its_entries_are_stored_under(redis: Redis) -> None:
    """The store hands back each entry under the number the script stored it at, in publication order."""
    store = OrderStore(redis)
    order_id = unique("ORD-NUMBERED")
    entries = [OutboxEntry(Destination.STATUS_CHANGED, order_id, f"{n}".encode()) for n in range(12)]
    first = Transition(
        client_id="client-a",
        order_id=order_id,
        input_id="in-1",
        fingerprint="f",
        expected_version="",
        new_state=b"{}",
        entries=entries[:2],
    )
    second = Transition(
        client_id="client-a",
        order_id=order_id,
        input_id="in-2",
        fingerprint="f",
        expected_version="in-1",
        new_state=b"{}",
        entries=entries[2:],
    )

    results = await store.commit([first, second])

    stored = [p for r in results for p in r.stored]
    assert [p.entry for p in stored] == entries
    assert sorted(p.number for p in stored) == [p.number for p in stored], "numbers sort in order"
    assert await redis.hgetall(outbox_key("client-a", order_id)) == {
        p.number: p.entry.encode() for p in stored
    }


async def test_concurrent_processors_apply_each_input_exactly_once(redis: Redis) -> None:
    """Two processors racing over the same inputs (a rebalance, a second instance) yield one effect each."""
    store = OrderStore(redis)
    create = prebooking("RES-A", "RES-B", "RES-C")
    await processor(redis, RecordingPublisher()).process([command_input(create)])
    replies = [
        reply_input(
            ReservationConfirmed(
                reply_id=f"r-{n}",
                order_id=create.order_id,
                reservation_id=f"{create.client_id}/{create.order_id}/ITEM-{n}",
            )
        )
        for n in (1, 2, 3)
    ]
    first, second = RecordingPublisher(), RecordingPublisher()

    await asyncio.gather(
        processor(redis, first).process(replies),
        processor(redis, second).process(list(reversed(replies))),
    )

    confirmations = [e for e in first.events() + second.events() if e.status is OrderStatus.CONFIRMED]
    assert len({e.event_id for e in confirmations}) == 1
    stored = await store.get(create.client_id, create.order_id)
    assert stored is not None and (stored.status, stored.sequence) == (OrderStatus.CONFIRMED, 2)


async def test_deadlines_survive_restarts_and_fire_once_across_instances(redis: Redis) -> None:
    """Deadlines live in Redis: watchers built after the fact (a restart) fire them, and two watchers
    racing (two instances) fail each order once."""
    pending = [command_input(prebooking(SILENT)) for _ in range(30)]
    await processor(redis, RecordingPublisher()).process(pending)
    later = NOW + timedelta(minutes=5)
    publishers = [RecordingPublisher(), RecordingPublisher()]
    watchers = [deadline_watcher(redis, p, later, batch=7) for p in publishers]

    await asyncio.gather(*(w.fire_due() for w in watchers))

    ours = {i.order_id for i in pending}
    failures = [
        e for p in publishers for e in p.events() if e.status is OrderStatus.FAILED and e.order_id in ours
    ]
    assert sorted(e.order_id for e in failures) == sorted(ours), "each order failed once, by one watcher"
    assert {e.reason for e in failures} == {"CONFIRMATION_TIMEOUT"}
    owned = {(i.client_id, i.order_id) for i in pending}
    assert owned.isdisjoint(await TimerStore(redis).claim_due(later, 30, 1000)), (
        "fired deadlines are forgotten"
    )


async def test_a_deadline_whose_batch_failed_after_its_commit_fires_again_and_publishes_its_event(
    redis: Redis,
) -> None:
    """The confirmation deadline is the only thing that re-delivers its own input: a batch that committed
    Failed and then could not publish keeps the deadline, so the next claim (once the lease ran out)
    publishes the stored event; the deadline is forgotten only then. Cancelled beside the publication, it
    was gone with the failed batch: the order Failed in Redis, its event never published."""
    create = command_input(prebooking(SILENT))
    await processor(redis, RecordingPublisher()).process([create])
    ours = (create.client_id, create.order_id)

    due, after_the_lease = NOW + timedelta(minutes=5), NOW + timedelta(minutes=6)
    with pytest.raises(ConnectionError):
        await deadline_watcher(redis, RecordingPublisher(failures=1), due).fire_due()
    stored = await OrderStore(redis).get(*ours)
    assert stored is not None and stored.status is OrderStatus.FAILED, "committed before the publication"

    healthy = RecordingPublisher()
    await deadline_watcher(redis, healthy, after_the_lease).fire_due()

    assert [(e.sequence, e.status) for e in healthy.events() if e.order_id == create.order_id] == [
        (2, OrderStatus.FAILED)
    ]
    assert await redis.hlen(outbox_key(*ours)) == 0
    assert ours not in await TimerStore(redis).claim_due(after_the_lease + timedelta(hours=1), 30, 1000)


async def test_an_input_that_breaks_the_domain_is_dead_lettered_not_retried_forever(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug hit by one input parks that input with the reason; the rest of the batch is applied."""
    healthy, poisoned = command_input(prebooking()), command_input(prebooking())
    poisoned = msgspec.structs.replace(
        poisoned, record=ConsumerRecord("t", 0, 7, 0, 0, b"k", b"v", None, 1, 1, [])
    )

    def decide_or_break(order: object, message: object, context: object) -> object:
        if getattr(message, "order_id", None) == poisoned.order_id:
            raise ZeroDivisionError("a bug")
        return decide(order, message, context)  # type: ignore[arg-type]

    monkeypatch.setattr("service.consumers.processor.decide", decide_or_break)
    publisher = RecordingPublisher()

    await processor(redis, publisher).process([poisoned, healthy])

    letters = [
        DeadLetter.model_validate_json(e.value)
        for e in publisher.published
        if e.destination is Destination.DEAD_LETTER
    ]
    assert [(d.error_type, d.source_offset, d.error) for d in letters] == [
        ("PROCESSING", 7, "ZeroDivisionError: a bug")
    ]
    assert [e.order_id for e in publisher.events()] == [healthy.order_id]


async def test_anomaly_record_survives_a_crash_before_publication(redis: Redis) -> None:
    """The record of a late confirmation is stored with its transition: a failed publish does not lose it,
    and the re-delivery records it once."""
    store = OrderStore(redis)
    create = command_input(prebooking(SILENT))
    await processor(redis, RecordingPublisher()).process([create])
    await deadline_watcher(redis, RecordingPublisher(), NOW + timedelta(minutes=5)).fire_due()
    late = reply_input(
        ReservationConfirmed(
            reply_id=unique("late"),
            order_id=create.order_id,
            reservation_id=f"{create.client_id}/{create.order_id}/ITEM-1",
        )
    )

    with pytest.raises(ConnectionError):
        await processor(redis, RecordingPublisher(failures=1)).process([late])
    await processor(redis, RecordingPublisher()).process([late])

    records = [r for r in await store.recent_anomalies(1000) if r["input_id"] == late.input_id]
    assert [r["anomaly"] for r in records] == ["LATE_CONFIRMATION"]


class SignallingEffects(LocalEffects):
    """Local effects that say when those run beside the publication are durable."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(
            EntitlementStore(redis), TimerStore(redis), OrderStore(redis), CommandOutcomeStore(redis)
        )
        self.beside_done = asyncio.Event()

    async def run_beside_publication(self, effects: Sequence[Effect]) -> None:
        await super().run_beside_publication(effects)
        self.beside_done.set()


class WaitingPublisher(RecordingPublisher):
    """A broker that acknowledges only once the batch's other effects are durable."""

    def __init__(self, effects: SignallingEffects) -> None:
        super().__init__()
        self._effects = effects

    async def publish(self, entries: Sequence[OutboxEntry]) -> None:
        async with asyncio.timeout(5):
            await self._effects.beside_done.wait()
        await super().publish(entries)


async def test_timers_and_the_index_are_written_while_the_messages_are_published(redis: Redis) -> None:
    """The effects that need not wait for the broker do not: a broker that acknowledges only once they are
    durable is not waited on for them (sequentially, this would time out). The outcome still follows."""
    effects = SignallingEffects(redis)
    publisher = WaitingPublisher(effects)
    orders = OrderStore(redis)
    # A client of its own: the index is listed below, and the other tests' orders are "client-a"'s.
    create = command_input(prebooking(client_id=unique("client-index")))
    batch = OrderProcessor(
        store=orders,
        entitlements=EntitlementStore(redis),
        effects=effects,
        publisher=publisher,
        clock=lambda: NOW,
        policy=Policy(),
    )

    await batch.process([create])

    assert [e.status for e in publisher.events()] == [OrderStatus.PENDING]
    assert [o.order_id for _, o in await orders.page(create.client_id, None, None, None, 10)] == [
        create.order_id
    ]
    sent = create.message
    assert isinstance(sent, CreatePrebooking)
    outcome = await CommandOutcomeStore(redis).get(sent.client_id, sent.command_id)
    assert outcome is not None and outcome.outcome == "applied"
    assert await redis.hlen(outbox_key(create.client_id, create.order_id)) == 0
