"""Where consumer groups stand: their committed offsets, the topics' end offsets, and rewinding a group.

Three quirks of the embedded broker (Tansu 0.6) shape this module; what it does works the same on Kafka:

- aiokafka's admin client cannot read group offsets from it (it cannot parse Tansu's OffsetFetch answer),
  so offsets are read by a consumer that names the group but is assigned its partitions by hand
  (`assign()` and `committed()` never join the group);
- it refuses offset commits from outside a group's membership (`UNKNOWN_MEMBER_ID`), so a group is rewound
  by joining it as its only member;
- its ListOffsets answer for the end of a partition is the base offset of the partition's last record
  batch + 1, not the last offset + 1 (a batch of 10 records at offsets 1..10 reports an end of 2), so the
  true end is found by reading that last batch.
"""

import asyncio
import contextlib
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.harness import progress

Offsets = dict[TopicPartition, int]


async def partitions_of(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of `topics` (the topics must exist)."""
    found: list[TopicPartition] = []
    for topic in topics:
        for _ in range(100):
            numbers = consumer.partitions_for_topic(topic)
            if numbers:
                break
            await consumer._client.force_metadata_update()  # no public refresh in aiokafka
        else:
            raise RuntimeError(f"topic {topic} has no partitions")
        found += [TopicPartition(topic, n) for n in sorted(numbers)]
    return found


class GroupOffsets:
    """The committed offsets of one consumer group on its topics, read without joining the group."""

    def __init__(self, bootstrap_servers: str, group: str, topics: list[str]) -> None:
        self.group = group
        self._bootstrap_servers = bootstrap_servers
        self._topics = topics
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False
        )
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self._consumer.start()
        self.partitions = await partitions_of(self._consumer, self._topics)
        # Manual assignment: the consumer may fetch the group's offsets but never becomes a member; paused,
        # it reads no records either.
        self._consumer.assign(self.partitions)
        self._consumer.pause(*self.partitions)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def committed(self) -> Offsets:
        """The group's committed offset of each partition (0 where it committed none yet)."""
        found = {}
        for partition in self.partitions:
            found[partition] = await self._consumer.committed(partition) or 0
        return found

    async def end_offsets(self) -> Offsets:
        """The end offset of each of the group's partitions now: what it has consumed all of once it
        committed these."""
        return await end_offsets(self._bootstrap_servers, self._topics)


async def end_offsets(bootstrap_servers: str, topics: list[str], within: float = 30.0) -> Offsets:
    """The end offset (last offset + 1) of every partition of `topics` now."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await partitions_of(consumer, topics)
        reported: Offsets = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        ends = {}
        for partition in partitions:
            ends[partition] = reported[partition]
            if reported[partition] == 0:
                continue
            # Read from the reported end's last offset: the rest of the last batch comes with it (Tansu).
            consumer.seek(partition, reported[partition] - 1)
            async with asyncio.timeout(within):
                while not (records := (await consumer.getmany(partition, timeout_ms=1000)).get(partition)):
                    pass
            ends[partition] = max(reported[partition], records[-1].offset + 1)
        return ends
    finally:
        await consumer.stop()


async def rewind_group(bootstrap_servers: str, group: str, topics: list[str], within: float = 60.0) -> int:
    """Commit offset 0 on every partition of `topics` for `group`, the way an operator resets a group.

    The group's own consumers must be stopped: this joins the group and waits until it owns every
    partition, commits, and leaves. Returns how many partitions were rewound.
    """
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        wanted = set(await partitions_of(consumer, topics))
        async with asyncio.timeout(within):
            # getmany drives the join; a member of a killed process may hold partitions until it times out.
            while consumer.assignment() != wanted:
                await consumer.getmany(timeout_ms=100, max_records=1)
        await consumer.commit(dict.fromkeys(wanted, 0))
        return len(wanted)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


def total(offsets: Offsets) -> int:
    """The sum over partitions: how many records lie before these offsets."""
    return sum(offsets.values())


POLL_SECONDS = 0.2
"""Committed offsets announce themselves to nobody: they are read again this often."""


async def await_committed(
    groups: list[GroupOffsets], ends: dict[str, Offsets], description: str, stall_seconds: float
) -> bool:
    """Wait until each group has committed up to `ends[group]` on every partition; give up after
    `stall_seconds` without any offset moving. Returns whether every group got there."""
    target = sum(total(ends[g.group]) for g in groups)
    with progress(description, target) as advance:
        shown = 0
        last_move = time.monotonic()
        while True:
            committed = {g.group: await g.committed() for g in groups}
            reached = sum(
                min(committed[g.group][tp], end) for g in groups for tp, end in ends[g.group].items()
            )
            if reached != shown:
                advance(reached - shown)
                shown, last_move = reached, time.monotonic()
            if all(committed[g.group][tp] >= end for g in groups for tp, end in ends[g.group].items()):
                return True
            if time.monotonic() - last_move > stall_seconds:
                return False
            await asyncio.sleep(POLL_SECONDS)


async def until_caught_up(
    bootstrap_servers: str, groups: dict[str, list[str]], within: float
) -> dict[str, int]:
    """Poll until every group (name → its topics) has committed up to the end of its topics; returns each
    group's remaining lag in records, zero or not after `within` seconds."""
    readers = [GroupOffsets(bootstrap_servers, group, topics) for group, topics in groups.items()]
    for reader in readers:
        await reader.start()
    try:
        deadline = time.monotonic() + within
        while True:
            lags = {}
            for reader in readers:
                ends, committed = await reader.end_offsets(), await reader.committed()
                lags[reader.group] = sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())
            if not any(lags.values()) or time.monotonic() >= deadline:
                return lags
            await asyncio.sleep(POLL_SECONDS)
    finally:
        for reader in readers:
            await reader.stop()
