"""The raw baseline: bare aiokafka processes moving records from topic to topic, no logic and no Redis.

`python -m bench.kafka_pipe <bootstrap> <group> <from>:<to> [<from>:<to> ...]` forwards every record of each
`from` topic to its `to` topic, keeping the key, with the consumer and producer settings the service uses:
batches of `--max-batch` records, sends of a batch awaited together, offsets committed after. It plays the
service (commands → requests, replies → events) or the resource simulator (requests → replies) in the
pipeline benchmark's baseline, so the baseline has the same processes and hops as the real thing.

Its producer keeps aiokafka's own partitioner, as in the runs issue 16 set its targets against: the
yardstick stays the same from run to run. (Its pure-Python murmur2 costs about 7 µs a message, some
0.014 ms of the forwarder's CPU per order in the service's place; the service's compiled one, about none.)
"""

import argparse
import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def forward(
    bootstrap: str, group: str, source: str, target: str, max_batch: int, fetch_max_wait_ms: int
) -> None:
    """Forward `source` to `target` forever."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=max_batch,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await consumer.start()
    await producer.start()
    print(f"forwarding {source} -> {target}: assigned to partitions", file=sys.stderr, flush=True)
    while True:
        batches = await consumer.getmany(timeout_ms=100, max_records=max_batch)
        sent = [
            await producer.send(target, record.value, key=record.key)
            for records in batches.values()
            for record in records
        ]
        if sent:
            await asyncio.gather(*sent)
            await consumer.commit()


async def main_async(arguments: argparse.Namespace) -> None:
    hops = [hop.split(":", 1) for hop in arguments.hops]
    await asyncio.gather(
        *(
            forward(
                arguments.bootstrap,
                f"{arguments.group}.{n}",
                source,
                target,
                arguments.max_batch,
                arguments.fetch_max_wait_ms,
            )
            for n, (source, target) in enumerate(hops)
        )
    )


def main() -> None:
    found = argparse.ArgumentParser(description=__doc__)
    found.add_argument("bootstrap")
    found.add_argument("group")
    found.add_argument("hops", nargs="+", help="source:target topic pairs")
    found.add_argument("--max-batch", type=int, default=500)
    found.add_argument("--fetch-max-wait-ms", type=int, default=500)
    asyncio.run(main_async(found.parse_args()))


if __name__ == "__main__":
    main()
