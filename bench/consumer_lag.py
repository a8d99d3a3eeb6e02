"""How far a consumer group is behind: the end offsets of its topics minus the offsets it committed."""

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

FETCH_ATTEMPTS = 20


async def consumer_lag(bootstrap_servers: str, group: str, topics: list[str]) -> dict[TopicPartition, int]:
    """Records not yet committed by `group`, per partition of `topics` (a partition it never committed
    counts from offset 0)."""
    # A consumer of the group that never subscribes reads the group's committed offsets without joining it.
    # The end offsets come from the high watermarks of fetch responses: the embedded Tansu broker answers
    # ListOffsets (aiokafka's `end_offsets`) wrongly, and the admin client's offset fetch not at all.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in await _partitions(consumer, topic)
        ]
        committed = {tp: await consumer.committed(tp) or 0 for tp in partitions}
        consumer.assign(partitions)
        for tp, offset in committed.items():
            consumer.seek(tp, offset)
        for _ in range(FETCH_ATTEMPTS):
            if all(consumer.highwater(tp) is not None for tp in partitions):
                break
            await consumer.getmany(*partitions, timeout_ms=200, max_records=1)
        ends = {tp: consumer.highwater(tp) for tp in partitions}
    finally:
        await consumer.stop()
    missing = [tp for tp, end in ends.items() if end is None]
    if missing:
        raise RuntimeError(f"no high watermark for {missing}")
    return {tp: (ends[tp] or 0) - committed[tp] for tp in partitions}


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await consumer._client.force_metadata_update()  # no public refresh in aiokafka
    raise RuntimeError(f"topic {topic} has no partitions")


async def until_caught_up(
    bootstrap_servers: str, groups: dict[str, list[str]], within: float, every: float = 0.5
) -> dict[str, int]:
    """Poll until every group's lag on its topics is zero (committed offsets announce themselves by no
    message, so there is nothing to await); returns each group's last lag, zero or not after `within`."""
    deadline = time.monotonic() + within
    while True:
        lags = {
            group: sum((await consumer_lag(bootstrap_servers, group, topics)).values())
            for group, topics in groups.items()
        }
        if not any(lags.values()) or time.monotonic() >= deadline:
            return lags
        await asyncio.sleep(every)
