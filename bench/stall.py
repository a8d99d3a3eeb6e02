"""What a stalled load generator leaves to read: the state of its Kafka clients and of every pending task,
and the trail of the orders it still waits for.

`bench.pipeline --services 2` stalled about one run in ten (2026-12-04). Its first reading (sends never
acknowledged) was wrong; these reports found the cause: the missing orders' events were on the topic, and
the observer's position past them (the embedded broker's produce race, docs/benchmarks.md). This reads
aiokafka's private state, for a diagnosis only: which connection waits for which answers, whether its
reader task still runs and its transport still reads, what the producer still holds, where each observed
partition's position and high watermark are.
"""

import asyncio
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.consumer_offsets import partitions_of


def _task(task: "asyncio.Task[Any] | None") -> str:
    if task is None:
        return "none"
    if not task.done():
        return "running"
    if task.cancelled():
        return "cancelled"
    error = task.exception()
    return f"failed: {error!r}" if error is not None else "finished"


def _connections(client: Any) -> list[str]:
    lines = []
    for node, connection in client._conns.items():
        reader, writer = connection._reader, connection._writer
        transport = writer.transport if writer is not None else None
        waiting = [entry[0] for entry in connection._requests]
        lines.append(
            f"  connection {node}: {len(waiting)} answers awaited (correlation ids {waiting[:8]}), "
            f"reader task {_task(connection._read_task)}, "
            f"{len(reader._buffer) if reader is not None else '-'} bytes buffered, "
            f"reader paused {getattr(reader, '_paused', '-')}, "
            f"transport reading {transport.is_reading() if transport is not None else '-'}, "
            f"closing {transport.is_closing() if transport is not None else '-'}"
        )
    return lines


def describe_producer(name: str, producer: AIOKafkaProducer) -> list[str]:
    """The producer's sender, what its accumulator holds, and each of its connections."""
    sender: Any = producer._sender
    accumulator: Any = producer._message_accumulator
    queued = sum(len(batches) for batches in accumulator._batches.values())
    return [
        f"producer {name}: sender task {_task(sender.sender_task)}, "
        f"nodes in flight {sorted(sender._in_flight)}, "
        f"partitions muted {sorted(str(tp) for tp in sender._muted_partitions)}, "
        f"batches queued {queued}, sent and unanswered {len(accumulator._pending_batches)}",
        *_connections(producer.client),
    ]


def describe_consumer(name: str, consumer: AIOKafkaConsumer) -> list[str]:
    """The consumer's fetch task and each of its connections."""
    fetcher: Any = consumer._fetcher
    assignment = consumer._subscription.subscription.assignment
    # Whether what it waits for is on the broker: a high watermark above the position is records stored
    # and not (yet) fetched; at the position, they were never produced.
    partitions = [
        f"{tp.partition}: position {assignment.state_value(tp).position}, "
        f"high watermark {consumer.highwater(tp)}"
        for tp in sorted(consumer.assignment())
    ]
    return [
        f"consumer {name}: fetch task {_task(fetcher._fetch_task)}, "
        f"records held for {len(fetcher._records)} partitions; {', '.join(partitions)}",
        *_connections(consumer._client),
    ]


def describe_tasks() -> list[str]:
    """Every pending task of the running loop, with where it waits."""
    lines = []
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=6)
        where = " <- ".join(
            f"{Path(f.f_code.co_filename).name}:{f.f_lineno} {f.f_code.co_name}" for f in frames
        )
        lines.append(f"  task {task.get_name()}: {where or '(not started)'}")
    return lines


def write_stall_report(
    path: Path,
    producers: dict[str, AIOKafkaProducer],
    consumers: dict[str, AIOKafkaConsumer],
    header: Sequence[str] = (),
) -> None:
    """Write `header`, then the state of these clients and of every pending task, to `path`."""
    lines = list(header)
    try:
        lines += [line for name, producer in producers.items() for line in describe_producer(name, producer)]
        lines += [line for name, consumer in consumers.items() for line in describe_consumer(name, consumer)]
        lines += ["tasks:", *describe_tasks()]
    except Exception:  # private state read wrongly must not hide the stall it describes
        lines.append(traceback.format_exc())
    path.write_text("\n".join(lines) + "\n")


async def trace_orders(
    bootstrap: str, topics: Sequence[str], order_ids: Sequence[str], quiet_seconds: float = 3.0
) -> list[str]:
    """Every record of these orders on these topics (a record names its order's id), read from the start
    by a consumer of its own, until `quiet_seconds` pass without a record: where each order's trail ends."""
    wanted = [order_id.encode() for order_id in order_ids]
    # A long fetch wait: this consumer must reach the ends of long partitions (`docs/benchmarks.md`, the
    # embedded broker), and its latency does not matter.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=200)
    await consumer.start()
    lines: list[str] = []
    try:
        partitions = await partitions_of(consumer, topics)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        while batches := await consumer.getmany(timeout_ms=int(quiet_seconds * 1000), max_records=5000):
            for tp, records in batches.items():
                lines += [
                    f"  {tp.topic}[{tp.partition}]@{record.offset}: {record.value[:200]!r}"
                    for record in records
                    if record.value is not None and any(order_id in record.value for order_id in wanted)
                ]
        ends = {f"{tp.topic}[{tp.partition}]": consumer.highwater(tp) for tp in partitions}
        lines.append(f"  read to the high watermarks {ends}")
    except Exception as error:  # what was found so far still says something
        lines.append(f"  tracing failed: {error!r}")
    finally:
        await consumer.stop()
    return lines
