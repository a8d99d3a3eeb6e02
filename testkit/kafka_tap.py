"""A test's view of the bus: produce inputs, and await the messages the service publishes."""

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import BaseModel

from service.devstack import EMBEDDED_FETCH_MAX_WAIT_MS

WAIT_SECONDS = 20.0

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class TopicTap:
    """Reads topics from their beginning without a consumer group (no join delay) and keeps every record."""

    def __init__(self, bootstrap_servers: str, topics: list[str]) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topics = topics
        self.records: dict[str, list[ConsumerRecord]] = {topic: [] for topic in topics}
        self._read_up_to: dict[TopicPartition, int] = {}  # the next offset to read, per partition
        self._changed = asyncio.Condition()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None

    async def start(self) -> None:
        """Assign every partition of the topics and start reading from offset 0."""
        # The embedded stack's processes' short fetch wait (see the constant): the broker looks for records
        # only now and then within it, and lists a partition only while it lasts, so a shorter one would
        # reach the end of a long topic later than the processes the test awaits do.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=EMBEDDED_FETCH_MAX_WAIT_MS,
        )
        await self._consumer.start()
        partitions = []
        for topic in self._topics:
            for partition in await self._partitions(topic):
                partitions.append(TopicPartition(topic, partition))
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        self._task = asyncio.create_task(self._read())

    async def _partitions(self, topic: str) -> set[int]:
        assert self._consumer is not None
        for _ in range(100):
            found = self._consumer.partitions_for_topic(topic)
            if found:
                return set(found)
            await self._consumer._client.force_metadata_update()  # no public refresh in aiokafka
        raise AssertionError(f"topic {topic} has no partitions")

    async def _read(self) -> None:
        assert self._consumer is not None
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=200)
                if not batches:
                    continue
                async with self._changed:
                    for tp, records in batches.items():
                        self.records[tp.topic].extend(records)
                        self._read_up_to[tp] = records[-1].offset + 1
                    self._changed.notify_all()
        except Exception as error:
            # Without this, every wait would run to its timeout and say nothing of why.
            async with self._changed:
                self._failed = error
                self._changed.notify_all()
            raise

    async def stop(self) -> None:
        """Stop reading."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def caught_up(self) -> None:
        """Wait until every record the broker holds now on the tapped topics has been read.

        Messages to two topics may arrive in any order; seeing one does not mean the other has been read.
        After this, a message published before the call is either in `records` or was never published."""
        assert self._consumer is not None
        ends = await self._consumer.end_offsets(list(self._consumer.assignment()))
        await self.wait_for(lambda: all(self._read_up_to.get(tp, 0) >= end for tp, end in ends.items()))

    def decoded(self, topic: str, model: type[M], where: Callable[[M], bool] = lambda _: True) -> list[M]:
        """Every record of `topic` parsed as `model`, filtered by `where`."""
        parsed = (model.model_validate_json(record.value) for record in self.records[topic])
        return [message for message in parsed if where(message)]

    async def wait_for(self, probe: Callable[[], T | None], timeout: float = WAIT_SECONDS) -> T:
        """Wait until `probe()` returns something truthy (re-checked on every new record) and return it; if
        the tap stops reading (its consumer failed), raise at once with the cause."""
        async with asyncio.timeout(timeout), self._changed:
            while not (result := probe()):
                if self._failed is not None:
                    raise RuntimeError("the tap stopped reading its topics") from self._failed
                await self._changed.wait()
            return result


async def produce(
    producer: AIOKafkaProducer, topic: str, value: bytes | BaseModel, key: str | bytes | None
) -> Any:
    """Send one record and wait for the broker's acknowledgement."""
    body = value.model_dump_json().encode() if isinstance(value, BaseModel) else value
    raw_key = key.encode() if isinstance(key, str) else key
    return await producer.send_and_wait(topic, body, key=raw_key)
