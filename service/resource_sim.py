"""A resource operator simulator: answers `reserve` requests with `confirmed`, `failed` or `waitlisted`.

Used by the demo, the tests and the benchmarks. Its reply ids and booking references derive from the
request ids, so a re-delivered request produces a duplicate reply, as a real operator's retry would.

It runs on bare aiokafka, not FastStream, and reads and writes its messages with msgspec: its logic is a
few comparisons per request, and FastStream's publish path and pydantic's validation of every request (its
passengers included) were most of its CPU per order. The replies are the contract's (`contracts.resources`;
a unit test validates every kind against those models); the requests come from the order service, so only
the fields it answers with are read.
"""

import asyncio
import contextlib
import hashlib
import logging
import random
import signal
from collections.abc import Sequence

import msgspec
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)

from contracts.limits import MAX_IDENTIFIER_LENGTH
from service import tracing
from service.config import ResourceSimSettings
from service.kafka import JSON_RECORD_HEADERS, build_producer, client_options, send_in_batches

log = logging.getLogger(__name__)

CLIENT_ID = "resource-sim"

POLL_MS = 1000
"""How long one `getmany` waits for records: it returns as soon as any have been fetched (the fetching goes on
in aiokafka's background task), so this bounds only how late a stop is noticed."""

COMMIT_INTERVAL_SECONDS = 1.0
"""Offsets are committed at most this often (and at a stop), not after every batch: a commit per batch was a
third of the simulator's broker round trips, and one on the path of every reply. A crash or a failed batch
re-reads at most this long of requests, whose replies the service already deduplicates by `reply_id`."""


def fetch_max_wait_ms(settings: ResourceSimSettings) -> int:
    """The simulator's own fetch wait if it has one, else every process's."""
    return settings.sim_fetch_max_wait_ms or settings.kafka_fetch_max_wait_ms


class Reserve(msgspec.Struct, tag_field="type", tag="reserve"):
    """The fields of a `ReserveRequest` the simulator answers with."""

    request_id: str
    order_id: str
    reservation_id: str
    resource_id: str
    service_date: str


class Release(msgspec.Struct, tag_field="type", tag="release"):
    """The fields of a `ReleaseRequest` the simulator logs."""

    request_id: str
    order_id: str
    reservation_id: str
    resource_id: str


class Confirmed(msgspec.Struct, tag_field="type", tag="confirmed"):
    """`contracts.resources.ReservationConfirmed`, as the simulator writes it."""

    reply_id: str
    order_id: str
    reservation_id: str
    booking_reference: str


class Failed(msgspec.Struct, tag_field="type", tag="failed"):
    """`contracts.resources.ReservationFailed`, as the simulator writes it."""

    reply_id: str
    order_id: str
    reservation_id: str
    reason_code: str
    reason: str


class Waitlisted(msgspec.Struct, tag_field="type", tag="waitlisted"):
    """`contracts.resources.ReservationWaitlisted`, as the simulator writes it."""

    reply_id: str
    order_id: str
    reservation_id: str


Reply = Confirmed | Failed | Waitlisted

_REQUESTS = msgspec.json.Decoder(Reserve | Release)
_ENCODER = msgspec.json.Encoder()


class ResourceSimulator:
    """Decides each reservation's fate by the settings: fixed sets of failing and waitlisting resources,
    then chance."""

    def __init__(self, settings: ResourceSimSettings) -> None:
        self._settings = settings
        self._failing = _resource_set(settings.sim_fail_resources)
        self.silent = _resource_set(settings.sim_silent_resources)
        self._waitlisting = _resource_set(settings.sim_waitlist_resources)
        self._waitlisting_first = _resource_set(settings.sim_waitlist_then_confirm_resources)
        self._random = random.Random(settings.sim_seed)
        self.releases = 0

    def reply_to(self, request: Reserve) -> Reply:
        """The operator's answer to one reservation request."""
        reply_id = _reply_id(request.request_id)
        if request.resource_id in self._failing:
            return Failed(
                reply_id,
                request.order_id,
                request.reservation_id,
                "SOLD_OUT",
                f"{request.resource_id} has no capacity left on {request.service_date}",
            )
        if request.resource_id in self._waitlisting:
            return Waitlisted(reply_id, request.order_id, request.reservation_id)
        if self._random.random() < self._settings.sim_failure_ratio:
            return Failed(
                reply_id,
                request.order_id,
                request.reservation_id,
                "RESOURCE_ERROR",
                "the resource's system did not accept the reservation",
            )
        return Confirmed(
            reply_id, request.order_id, request.reservation_id, booking_reference(request.request_id)
        )

    def replies_to(self, request: Reserve) -> list[Reply]:
        """Every reply to one reservation request, in order: one, or `waitlisted` then `confirmed`."""
        if request.resource_id not in self._waitlisting_first:
            return [self.reply_to(request)]
        waitlisted = Waitlisted(
            _reply_id(f"{request.request_id}/waitlisted"), request.order_id, request.reservation_id
        )
        confirmed = Confirmed(
            _reply_id(request.request_id),
            request.order_id,
            request.reservation_id,
            booking_reference(request.request_id),
        )
        return [waitlisted, confirmed]

    def answer(self, records: Sequence[ConsumerRecord]) -> list[Reply]:
        """The replies to a batch of requests, in order (none to a release, a silent resource or a record
        that is no request)."""
        answers: list[Reply] = []
        for record in records:
            try:
                request = _REQUESTS.decode(record.value or b"")
            except msgspec.DecodeError:
                log.warning("sim.bad_request", extra={"offset": record.offset, "partition": record.partition})
                continue
            if isinstance(request, Release):
                self.releases += 1
                log.info("sim.released", extra={"reservation_id": request.reservation_id})
                continue
            if request.resource_id not in self.silent:
                answers += self.replies_to(request)
        return answers


def encode(reply: Reply) -> bytes:
    """A reply as published on `resources.replies`."""
    return _ENCODER.encode(reply)


def _reply_id(request_id: str) -> str:
    # A request id of a long order id is longer than an identifier may be: then a digest stands in for it.
    reply_id = f"{request_id}/reply"
    if len(reply_id) <= MAX_IDENTIFIER_LENGTH:
        return reply_id
    return f"reply-{hashlib.blake2b(request_id.encode(), digest_size=16).hexdigest()}"


def booking_reference(request_id: str) -> str:
    """The simulated resource's reference for a reservation: `BK-` and ten hex digits of the request id."""
    return f"BK-{hashlib.blake2b(request_id.encode(), digest_size=5).hexdigest().upper()}"


def _resource_set(csv: str) -> set[str]:
    return {r.strip() for r in csv.split(",") if r.strip()}


class ResourceSimProcess:
    """The simulator's consume → answer → publish loop: a batch's replies are sent together; offsets are
    committed, once the replies before them are acknowledged, every `COMMIT_INTERVAL_SECONDS` and at a stop
    (a batch that fails is read again from the last commit)."""

    def __init__(self, settings: ResourceSimSettings) -> None:
        self._settings = settings
        self.simulator = ResourceSimulator(settings)
        # Made in `start`: aiokafka's clients bind to the running event loop.
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    def assigned(self) -> bool:
        """Whether the consumer owns partitions (from then on, requests are read at once)."""
        return self._consumer is not None and bool(self._consumer.assignment())

    async def start(self) -> None:
        settings = self._settings
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=CLIENT_ID,
            group_id=settings.sim_group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=settings.max_batch,
            fetch_max_wait_ms=fetch_max_wait_ms(settings),
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            metadata_max_age_ms=settings.kafka_metadata_max_age_ms,
            **client_options(settings),
        )
        producer = build_producer(settings, client_id=CLIENT_ID)
        await producer.start()
        await consumer.start()
        consumer.subscribe([settings.topic_resource_requests], listener=_LogAssignments())
        self._consumer, self._producer = consumer, producer
        self._stopping.clear()
        self._loop = asyncio.create_task(self._consume(consumer, producer), name="resource-sim")

    async def stop(self) -> None:
        """Finish the batch in hand (its replies sent), commit what was answered, then close the clients."""
        self._stopping.set()
        if self._loop is not None:
            await self._loop
        if self._consumer is not None and self._producer is not None:
            await self._consumer.stop()
            await self._producer.stop()

    async def run(self) -> None:
        """Run until SIGTERM or SIGINT (the CLI)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await self.start()
        # The line that FastStream's processes log once SIGTERM drains (benchmarks and tests wait for it).
        log.info("sim.started successfully")
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def _consume(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        stopping = asyncio.ensure_future(self._stopping.wait())
        loop = asyncio.get_running_loop()
        committed_at = loop.time()
        answered = False  # requests answered since the last commit
        try:
            while not self._stopping.is_set():
                fetching = asyncio.ensure_future(consumer.getmany(timeout_ms=POLL_MS))
                await asyncio.wait({fetching, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not fetching.done():
                    fetching.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fetching
                    break
                try:
                    answered = await self._answer(producer, fetching.result()) or answered
                    if answered and loop.time() - committed_at >= COMMIT_INTERVAL_SECONDS:
                        await consumer.commit()  # the positions after replies already acknowledged
                        committed_at, answered = loop.time(), False
                except Exception:
                    log.exception("sim.batch_failed")
                    answered = False
                    for partition in consumer.assignment():
                        await _rewind(consumer, partition)
            if answered:
                try:
                    await consumer.commit()
                except Exception:  # the clients must still close: the next start re-reads, and answers again
                    log.exception("sim.commit_failed")
        finally:
            stopping.cancel()

    async def _answer(
        self, producer: AIOKafkaProducer, batches: dict[TopicPartition, list[ConsumerRecord]]
    ) -> bool:
        """Answer a batch and wait until its replies are acknowledged; whether it held any record."""
        if not batches:
            return False
        records = [r for partition_records in batches.values() for r in partition_records]
        with tracing.consuming(records) as traced:  # a span per request while the batch is answered
            # Each request's replies continue its trace (tracing on): answered one record at a time.
            answers = [(a, traced.get(id(r))) for r in records for a in self.simulator.answer([r])]
            if self._settings.sim_latency_seconds:
                await asyncio.sleep(self._settings.sim_latency_seconds)
            topic = self._settings.topic_resource_replies
            # In record batches per partition, each handed over whole (as the service's outbox publisher).
            await send_in_batches(
                producer,
                (
                    (
                        topic,
                        answer.order_id.encode(),
                        encode(answer),
                        tracing.record_headers(JSON_RECORD_HEADERS, traceparent, topic),
                    )
                    for answer, traceparent in answers
                ),
            )
        return True


async def _rewind(consumer: AIOKafkaConsumer, partition: TopicPartition) -> None:
    """Back to the partition's last commit, so that a failed batch is answered again."""
    committed = await consumer.committed(partition)
    if committed is None:
        await consumer.seek_to_beginning(partition)
    else:
        consumer.seek(partition, committed)


class _LogAssignments(ConsumerRebalanceListener):  # type: ignore[misc]
    """Logs each assignment as FastStream's consumers do (`assigned to partitions`: benchmarks wait on it)."""

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        partitions = sorted(f"{p.topic}:{p.partition}" for p in assigned)
        log.info("sim.assigned to partitions", extra={"partitions": partitions})


def build_resource_sim(settings: ResourceSimSettings) -> ResourceSimProcess:
    """The simulator, ready to `start` (or `run`, for the CLI)."""
    return ResourceSimProcess(settings)
