"""The simulator's lean path reads the contract's requests and writes the contract's replies."""

import asyncio

from aiokafka import ConsumerRecord, TopicPartition

from contracts.base import Passenger
from contracts.resources import (
    ReleaseRequest,
    ReservationConfirmed,
    ReservationFailed,
    ReservationWaitlisted,
    ReserveRequest,
    resource_reply_adapter,
)
from service.config import ResourceSimSettings
from service.devstack import Endpoints
from service.resource_sim import (
    ResourceSimProcess,
    ResourceSimulator,
    booking_reference,
    encode,
    fetch_max_wait_ms,
)

Reply = ReservationConfirmed | ReservationFailed | ReservationWaitlisted
PASSENGERS = [Passenger(passenger_id="PAX-1", name="Ada Lovelace")]


def _reserve(resource_id: str, order_id: str = "ORD-1") -> ReserveRequest:
    return ReserveRequest(
        request_id=f"acme/{order_id}/ITEM-1/reserve",
        order_id=order_id,
        reservation_id=f"acme/{order_id}/ITEM-1",
        resource_id=resource_id,
        passengers=PASSENGERS,
        product_type="LOUNGE",
        service_date="2026-12-24",
    )


def _record(value: bytes, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("requests", 0, offset, 0, 0, b"k", value, None, 1, len(value), [])


def _answers(settings: ResourceSimSettings, *requests: ReserveRequest | ReleaseRequest) -> list[Reply]:
    simulator = ResourceSimulator(settings)
    records = [_record(r.model_dump_json().encode(), n) for n, r in enumerate(requests)]
    return [resource_reply_adapter.validate_json(encode(a)) for a in simulator.answer(records)]


def test_every_kind_of_reply_validates_against_the_contract() -> None:
    settings = ResourceSimSettings(
        sim_fail_resources="FULL",
        sim_waitlist_resources="WAIT",
        sim_waitlist_then_confirm_resources="LATER",
        sim_silent_resources="SILENT",
    )
    replies = _answers(
        settings,
        _reserve("OPEN", "ORD-1"),
        _reserve("FULL", "ORD-2"),
        _reserve("WAIT", "ORD-3"),
        _reserve("LATER", "ORD-4"),
        _reserve("SILENT", "ORD-5"),
    )

    assert [type(r) for r in replies] == [
        ReservationConfirmed,
        ReservationFailed,
        ReservationWaitlisted,
        ReservationWaitlisted,
        ReservationConfirmed,
    ]
    confirmed = replies[0]
    assert isinstance(confirmed, ReservationConfirmed)
    assert confirmed.reply_id == "acme/ORD-1/ITEM-1/reserve/reply"
    assert confirmed.reservation_id == "acme/ORD-1/ITEM-1"
    assert confirmed.booking_reference == booking_reference("acme/ORD-1/ITEM-1/reserve")
    failed = replies[1]
    assert isinstance(failed, ReservationFailed) and failed.reason_code == "SOLD_OUT"
    assert "2026-12-24" in failed.reason
    assert replies[3].reply_id != replies[4].reply_id, "waitlisted then confirmed: two replies"


def test_chance_failures_releases_and_records_that_are_no_request() -> None:
    simulator = ResourceSimulator(ResourceSimSettings(sim_failure_ratio=1.0))
    release = ReleaseRequest(
        request_id="acme/ORD-9/ITEM-1/release",
        order_id="ORD-9",
        reservation_id="acme/ORD-9/ITEM-1",
        resource_id="OPEN",
        passengers=PASSENGERS,
        reason="ORDER_FAILED",
    )
    records = [
        _record(b"not json"),
        _record(b'{"type": "reserve", "order_id": "ORD-8"}', 1),
        _record(release.model_dump_json().encode(), 2),
        _record(_reserve("OPEN").model_dump_json().encode(), 3),
    ]

    answers = simulator.answer(records)

    assert simulator.releases == 1
    [failed] = [resource_reply_adapter.validate_json(encode(a)) for a in answers]
    assert isinstance(failed, ReservationFailed) and failed.reason_code == "RESOURCE_ERROR"


class _Consumer:
    """Hands out the given batches, then waits as an idle consumer does; records the commits."""

    def __init__(self, batches: list[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]]) -> None:
        self._batches = batches
        self.drained = asyncio.Event()
        self.commits = 0

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        if self._batches:
            return self._batches.pop(0)
        self.drained.set()
        await asyncio.Event().wait()  # cancelled by the stop
        return {}

    async def commit(self) -> None:
        self.commits += 1

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("requests", 0)}


class _Batch:
    def __init__(self) -> None:
        self.values: list[bytes] = []

    def append(self, *, key: bytes, value: bytes, timestamp: None, headers: object) -> object:
        self.values.append(value)
        return object()


class _Producer:
    """Acknowledges every record batch at once; keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def _partition(self, *args: object) -> int:
        return 0

    def _partitioner(self, *args: object) -> int:
        return 0

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> asyncio.Future[object]:
        self.sent += batch.values
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_offsets_are_committed_now_and_then_and_at_the_stop_not_per_batch() -> None:
    requests = [_reserve("OPEN", f"ORD-{n}").model_dump_json().encode() for n in range(3)]
    partition = TopicPartition("requests", 0)
    consumer = _Consumer([{partition: [_record(value, n)]} for n, value in enumerate(requests)])
    producer = _Producer()
    process = ResourceSimProcess(ResourceSimSettings())
    loop = asyncio.create_task(process._consume(consumer, producer))

    await consumer.drained.wait()
    assert len(producer.sent) == 3, "every request answered"
    assert consumer.commits == 0, "three batches within the commit interval: no commit yet"
    process._stopping.set()
    await loop

    assert consumer.commits == 1, "the stop commits what was answered"


class _UncommittableConsumer(_Consumer):
    async def commit(self) -> None:
        raise RuntimeError("the coordinator is gone")


async def test_a_failed_last_commit_still_lets_the_stop_finish() -> None:
    request = _reserve("OPEN").model_dump_json().encode()
    consumer = _UncommittableConsumer([{TopicPartition("requests", 0): [_record(request)]}])
    process = ResourceSimProcess(ResourceSimSettings())
    loop = asyncio.create_task(process._consume(consumer, _Producer()))

    await consumer.drained.wait()
    process._stopping.set()
    await loop  # returns: the stop goes on to close the clients


def test_the_simulator_polls_with_every_process_wait_unless_given_its_own() -> None:
    """On the embedded stack every process, the simulator too, waits 10 ms per fetch; its own setting wins."""
    stack = Endpoints("127.0.0.1:9092", "redis://x", embedded_kafka=True)
    embedded = ResourceSimSettings(**stack.settings())  # type: ignore[arg-type]
    assert (fetch_max_wait_ms(embedded), embedded.kafka_fetch_max_wait_ms) == (10, 10)
    assert fetch_max_wait_ms(ResourceSimSettings(kafka_fetch_max_wait_ms=250)) == 250
    assert fetch_max_wait_ms(ResourceSimSettings(kafka_fetch_max_wait_ms=250, sim_fetch_max_wait_ms=20)) == 20
