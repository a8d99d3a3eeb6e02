"""The batch subscribers wait for records in the poll itself, never in a sleep after an empty poll: a record
arriving while a subscriber was idle is handed over as soon as it is fetched."""

from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from aiokafka import ConsumerRecord, TopicPartition
from faststream.kafka import KafkaBroker

from contracts.commands import OrderCommand
from service.config import Settings
from service.kafka import subscribe_batches
from service.kafka._subscribers import BATCH_POLL_MS, _BatchSubscriberWithoutIdleSleep


class _Consumer:
    """Answers each `getmany` with the next of `polls`, recording the arguments."""

    def __init__(self, *polls: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        self.polls = list(polls)
        self.asked: list[dict[str, Any]] = []

    async def getmany(self, **options: Any) -> dict[TopicPartition, list[ConsumerRecord]]:
        self.asked.append(options)
        return self.polls.pop(0)


def _subscriber(settings: Settings) -> Any:
    broker = KafkaBroker("localhost:9092")

    async def handle(records: Sequence[ConsumerRecord]) -> None:
        pass

    subscribe_batches(
        broker, settings, topic="orders.commands", group="g", title="t", payload=OrderCommand, handler=handle
    )
    [subscriber] = broker.subscribers
    return subscriber


def _record(offset: int) -> ConsumerRecord:
    return ConsumerRecord("orders.commands", 0, offset, 0, 0, b"k", b"v", None, 1, 1, [])


async def test_an_empty_poll_returns_without_sleeping(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(_: float) -> None:
        raise AssertionError("slept after an empty poll")

    monkeypatch.setattr(anyio, "sleep", no_sleep)
    subscriber = _subscriber(Settings())
    assert type(subscriber) is _BatchSubscriberWithoutIdleSleep
    records = [_record(0), _record(1)]
    consumer = _Consumer({}, {TopicPartition("orders.commands", 0): records})

    assert await subscriber.get_msg(consumer) == ()
    assert await subscriber.get_msg(consumer) == tuple(records)
    settings = Settings()
    assert consumer.asked == [{"timeout_ms": BATCH_POLL_MS, "max_records": settings.max_batch}] * 2
