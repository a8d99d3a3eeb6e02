"""The outbox publisher builds its record batches itself (`send_batch`): each message must land on the
partition the producer's own partitioner gives its key, as every other producer of that key puts it, in
the order it was decided, including when a partition's messages fill several batches."""

from aiokafka.partitioner import murmur2
from faststream.kafka import KafkaBroker

from service.config import Settings
from service.consumers.publishing import OutboxPublisher
from service.store.outbox import Destination, OutboxEntry
from testkit.kafka_tap import TopicTap


async def test_messages_land_on_their_keys_partitions_in_order_across_full_batches(
    settings: Settings,
) -> None:
    publisher = OutboxPublisher(KafkaBroker(settings.kafka_bootstrap_servers), settings)
    tap = TopicTap(settings.kafka_bootstrap_servers, [settings.topic_resource_requests])
    await tap.start()
    await publisher.start()
    keys = [f"ORD-PUB-{n}" for n in range(7)]
    # 7 keys x 40 messages of 1 KiB: 40 KiB per key, far over one 16 KiB record batch per partition.
    entries = [
        OutboxEntry(Destination.RESOURCE_REQUESTS, key, b'{"n": %d, "pad": "%s"}' % (n, b"x" * 1000))
        for n in range(40)
        for key in keys
    ]
    try:
        await publisher.publish(entries)
        records = await tap.wait_for(
            lambda: r if len(r := tap.records[settings.topic_resource_requests]) >= len(entries) else None
        )
    finally:
        await publisher.stop()
        await tap.stop()

    partitions = settings.topic_partitions
    for key in keys:
        mine = [r for r in records if r.key == key.encode()]
        assert {r.partition for r in mine} == {(murmur2(key.encode()) & 0x7FFFFFFF) % partitions}
        assert [int(r.value.split(b",")[0].split(b":")[1]) for r in mine] == list(range(40))
    assert len(records) == len(entries)
