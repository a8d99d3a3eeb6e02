"""The service's two consumers: client commands and resource replies, each a batch subscriber."""

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import msgspec
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from redis.exceptions import RedisError

from contracts.commands import OrderCommand
from contracts.events import CommandRejected, DeadLetter
from contracts.resources import (
    ReservationConfirmed,
    ReservationFailed,
    ReservationWaitlisted,
    ResourceReplyMessage,
)
from service import metrics, tracing
from service.config import Settings
from service.consumers.inbound import Inbound, InboundDecoder, command_decoder, reply_decoder
from service.consumers.processor import OrderProcessor
from service.consumers.publishing import OutboxPublisher
from service.domain.command_outcomes import rejected
from service.kafka import client_of_topic, client_topic_pattern, per_client, subscribe_batches
from service.store.command_outcomes import CommandOutcomeStore
from service.store.outbox import Destination, OutboxEntry

log = logging.getLogger(__name__)


class BatchHandler:
    """Decodes one batch, dead-letters what is invalid and applies the rest."""

    def __init__(
        self,
        *,
        decoder: InboundDecoder,
        processor: OrderProcessor,
        publisher: OutboxPublisher,
        outcomes: CommandOutcomeStore,
        clock: Callable[[], datetime],
        backoff_seconds: float,
        source: str = "commands",
    ) -> None:
        self._source = source  # which consumer, in `orders_batch_failures_total`
        self._decoder = decoder
        self._processor = processor
        self._publisher = publisher
        self._outcomes = outcomes
        self._clock = clock
        self._backoff_seconds = backoff_seconds

    async def __call__(self, records: Sequence[ConsumerRecord]) -> None:
        """Handle a batch; on any failure wait, then fail so that the batch is read again."""
        try:
            await self._handle(records)
        except Exception as error:
            infrastructure = isinstance(error, RedisError | KafkaError | OSError)
            metrics.BATCH_FAILURES.labels(self._source).inc()
            log.warning(
                "batch.retry",
                extra={"error": repr(error), "records": len(records)},
                exc_info=not infrastructure,
            )
            # Raising makes FastStream rewind the partitions (NACK) without committing; the pause keeps an
            # outage, or anything else that fails a whole batch, from turning into a hot loop.
            await asyncio.sleep(self._backoff_seconds)
            raise

    async def _handle(self, records: Sequence[ConsumerRecord]) -> None:
        with tracing.consuming(records) as traced:  # a span per record while the batch is handled
            await self._handle_traced(records, traced)

    async def _handle_traced(self, records: Sequence[ConsumerRecord], traced: Mapping[int, str]) -> None:
        now = self._clock()
        inputs: list[Inbound] = []
        letters: list[DeadLetter] = []
        rejections: list[CommandRejected] = []
        for record in records:
            decoded = self._decoder.decode(record, now)
            if isinstance(decoded, Inbound):
                inputs.append(
                    decoded
                    if not traced
                    else msgspec.structs.replace(decoded, traceparent=traced[id(record)])
                )
            elif isinstance(decoded, CommandRejected):
                rejections.append(decoded)
            else:
                letters.append(decoded)
        if letters or rejections:
            await self._refuse(letters, rejections)
        if inputs:
            await self._processor.process(inputs)
            _count_ignored_fields(inputs)

    async def _refuse(self, letters: list[DeadLetter], rejections: list[CommandRejected]) -> None:
        """Publish the dead letters, and the answers to invalid commands (which claim and change nothing,
        so they need no outbox: a re-read batch rebuilds them under the same event ids)."""
        entries = [
            OutboxEntry(Destination.DEAD_LETTER, "", letter.model_dump_json().encode()) for letter in letters
        ]
        entries += [
            OutboxEntry(
                Destination.COMMAND_REJECTED, r.order_id, r.model_dump_json().encode(), client_id=r.client_id
            )
            for r in rejections
        ]
        await self._publisher.publish(entries)
        if rejections:
            # After publication, as for decided commands; a command already applied or rejected under this
            # command_id keeps its outcome (the store's rule), and a re-read batch records the same again.
            await self._outcomes.record_unanswered_rejections([rejected(r) for r in rejections])
        for letter in letters:
            metrics.DEAD_LETTERS.labels(letter.source_topic, letter.error_type).inc()
            log.warning(
                "message.dead_lettered",
                extra={
                    "topic": letter.source_topic,
                    "partition": letter.source_partition,
                    "offset": letter.source_offset,
                    "error_type": letter.error_type,
                    "error": letter.error,
                },
            )
        for rejection in rejections:
            metrics.REJECTIONS.labels(rejection.code.value).inc()
            log.info(
                "command.rejected",
                extra={
                    "order_id": rejection.order_id,
                    "input_id": f"cmd/{rejection.client_id}/{rejection.command_id}",
                    "code": rejection.code,
                    "error": rejection.message,
                },
            )


def _count_ignored_fields(inputs: list[Inbound]) -> None:
    for inbound in inputs:
        message = inbound.message
        if inbound.ignored_fields and isinstance(
            message, ReservationConfirmed | ReservationFailed | ReservationWaitlisted
        ):
            metrics.count_unknown_reply_fields(message.type, inbound.ignored_fields)


def register_order_consumers(
    broker: KafkaBroker,
    settings: Settings,
    processor: OrderProcessor,
    publisher: OutboxPublisher,
    outcomes: CommandOutcomeStore,
    clock: Callable[[], datetime],
) -> None:
    """Subscribe the commands and replies handlers to their topics; in the `per_client` layout, the commands
    handler to every client's commands topic, each command checked against its topic's client."""
    commands = settings.topic_commands
    by_topic = per_client(settings)
    consumers = [
        (
            (None, client_topic_pattern(commands)) if by_topic else (commands, None),
            "commands",
            OrderCommand,
            command_decoder(
                settings.max_message_bytes,
                functools.partial(client_of_topic, commands) if by_topic else None,
            ),
            "Commands from client systems, keyed by order_id.",
        ),
        (
            (settings.topic_resource_replies, None),
            "replies",
            ResourceReplyMessage,
            reply_decoder(settings.max_message_bytes),
            "Replies from resource operators to `reserve` requests, keyed by order_id.",
        ),
    ]
    for (topic, pattern), name, payload, decoder, description in consumers:
        handler = BatchHandler(
            decoder=decoder,
            processor=processor,
            publisher=publisher,
            outcomes=outcomes,
            clock=clock,
            backoff_seconds=settings.retry_backoff_seconds,
            source=name,
        )
        subscribe_batches(
            broker,
            settings,
            topic=topic,
            pattern=pattern,
            group=f"{settings.consumer_group}.{name}",
            title=name,
            description=description,
            payload=payload,
            handler=handler,
        )
