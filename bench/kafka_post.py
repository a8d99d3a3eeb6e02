"""The relay's latency floor: a bare aiokafka consumer posting every event it reads, no Redis, no queue.

`python -m bench.kafka_post <bootstrap> <group> <topic> <endpoint JSON>` reads `topic` as the relay's
consumer does (batches of `--max-batch` records, the same fetch wait and poll) and posts each record's bytes
to the endpoint with the relay's own HTTP client and attempt code (`post_event`: the same signing, timeout
and capped answer), at most `--concurrency` at a time, as the relay's slots to one endpoint. Nothing is
stored, retried, ordered or committed: what remains of a delivery's latency is the broker's hop and the
HTTP request, which the relay benchmark measures at the same offered rate as the relay (`bench.relay`).
"""

import argparse
import asyncio
import sys
from datetime import UTC, datetime

import jiter
from aiokafka import AIOKafkaConsumer

from service import runtime
from service.kafka import BATCH_POLL_MS
from service.relay.sender import http_client, post_event
from service.store.webhook_endpoints import Endpoint


async def post_forever(arguments: argparse.Namespace) -> None:
    """Read `topic` from its end and post every record, forever."""
    endpoint = Endpoint.model_validate_json(arguments.endpoint)
    consumer = AIOKafkaConsumer(
        arguments.topic,
        bootstrap_servers=arguments.bootstrap,
        group_id=arguments.group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=arguments.fetch_max_wait_ms,
    )
    slots = asyncio.Semaphore(arguments.concurrency)
    in_flight: set[asyncio.Task[None]] = set()

    async def post(body: bytes) -> None:
        async with slots:
            event_id = jiter.from_json(body)["event_id"]
            now = datetime.now(UTC)
            await post_event(client, endpoint, event_id, body, now, arguments.timeout, 1024)

    async with http_client() as client:
        await consumer.start()
        print(f"posting {arguments.topic}: assigned to partitions", file=sys.stderr, flush=True)
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=BATCH_POLL_MS, max_records=arguments.max_batch)
                for records in batches.values():
                    for record in records:
                        task = asyncio.create_task(post(record.value or b""))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
        finally:
            await consumer.stop()


def main() -> None:
    found = argparse.ArgumentParser(description=__doc__)
    found.add_argument("bootstrap")
    found.add_argument("group")
    found.add_argument("topic")
    found.add_argument("endpoint", help="the endpoint as JSON (`Endpoint.model_dump_json()`)")
    found.add_argument("--max-batch", type=int, default=500)
    found.add_argument("--fetch-max-wait-ms", type=int, default=500)
    found.add_argument("--concurrency", type=int, default=8)
    found.add_argument("--timeout", type=float, default=5.0)
    runtime.run(post_forever(found.parse_args()))  # on uvloop, as the relay


if __name__ == "__main__":
    main()
