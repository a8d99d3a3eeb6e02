"""Batch subscribers that hand their handler the raw records, documented with the contract's payload.

The processes validate each record themselves so that one bad record becomes a dead letter (or a log line)
instead of failing its whole batch: the brokers therefore run without FastDepends (`apply_types=False`) and
decode nothing. FastStream is used for its batch loop, offset commits, lifecycle and AsyncAPI document.
"""

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from itertools import chain
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.middlewares import AckPolicy

from service.config import Settings

RecordsHandler = Callable[[Sequence[ConsumerRecord]], Awaitable[None]]
"""Handles one batch; raising leaves its offsets uncommitted, so that the batch is read again."""

BATCH_POLL_MS = 100
"""How long one poll of a batch subscriber waits for records. A poll returns as soon as any are fetched, so
this bounds only how often an idle subscriber polls (see `_BatchSubscriberWithoutIdleSleep`)."""


class _BatchSubscriberWithoutIdleSleep(BatchSubscriber):
    """FastStream's batch subscriber, minus the sleep after an empty poll.

    After a poll that found nothing, FastStream sleeps as long as the poll waited, and a record arriving
    meanwhile waits out the rest: up to 10 ms at every hop with our earlier poll of 10 ms, in the tail of
    the latency at a few hundred orders per second, when polls often come back empty. `getmany` already
    waits for records (in aiokafka's fetcher, without polling), so the sleep bought nothing.
    """

    __slots__ = ()

    async def get_msg(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord, ...]:
        """One poll: the records fetched, or none after `batch_timeout_ms`."""
        fetched = await consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=self.max_records)
        return tuple(chain.from_iterable(fetched.values()))


def subscribe_batches(
    broker: KafkaBroker,
    settings: Settings,
    *,
    topic: str | None = None,
    pattern: str | None = None,
    group: str,
    title: str,
    payload: Any,
    handler: RecordsHandler,
    description: str | None = None,
) -> None:
    """Subscribe `handler` to `topic`, or to every topic matching the regular expression `pattern` (new
    ones are found at the next metadata refresh), in consumer group `group`, up to `settings.max_batch`
    records at a time; `title`, `description` and `payload` (the contract type) are what the AsyncAPI
    document shows."""
    if (topic is None) == (pattern is None):
        raise ValueError("subscribe to a topic or to a pattern")
    subscriber = broker.subscriber(
        *([topic] if topic is not None else []),
        pattern=pattern,
        batch=True,
        max_records=settings.max_batch,
        group_id=group,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        batch_timeout_ms=BATCH_POLL_MS,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        decoder=_raw_records,
        title=title,
        description=description,
    )
    if type(subscriber) is not BatchSubscriber:
        raise TypeError(f"FastStream's batch subscriber is now {type(subscriber).__name__}: review get_msg")
    subscriber.__class__ = _BatchSubscriberWithoutIdleSleep  # the same slots: only get_msg differs
    subscriber(_documented_payload(payload, handler))


async def _raw_records(message: KafkaMessage) -> tuple[ConsumerRecord, ...]:
    """FastStream decoder that hands a batch handler its records untouched."""
    raw = message.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


def _documented_payload(payload: Any, handler: RecordsHandler) -> Callable[[Any], Awaitable[None]]:
    """`handler`, with its body annotated as `payload` for the AsyncAPI document only: FastStream builds the
    message schema from the handler's signature, so the wrapper exposes the contract type there."""

    @functools.wraps(handler)
    async def wrapper(body: Any) -> None:
        await handler(body)

    parameter = inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=payload)
    wrapper.__signature__ = inspect.Signature([parameter], return_annotation=None)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {"body": payload, "return": None}
    return wrapper
