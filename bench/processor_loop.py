"""The order processor alone, against a real Redis, without Kafka: its CPU per order, optionally profiled.

    python -m bench.processor_loop                    # 40 batches of 100 orders, created then confirmed
    python -m bench.processor_loop --profile out.prof # and a cProfile of the measured batches

Each batch of one-item prebookings goes through the commands decoder and `OrderProcessor.process`, then the
confirmations of their reserve requests through the replies decoder and the processor again: the service's
two inputs per order, with its stores and Lua scripts, and a publisher that only keeps the requests. The
process's CPU time per order is printed; the broker, the simulator and the load generator are not in it,
so the figure moves with the processor's own cost (the pipeline benchmark's is the whole service's), and
with less noise on a shared machine. The collector is set as in the service (`service.cli._settle_heap`).
"""

import argparse
import asyncio
import cProfile
import json
import time
from collections.abc import Sequence

import jiter
from aiokafka import ConsumerRecord

from service.cli import _settle_heap
from service.clock import utc_now
from service.config import Settings, policy_from
from service.consumers.inbound import Inbound, command_decoder, reply_decoder
from service.consumers.processor import OrderProcessor
from service.devstack import free_port, redis_server_binary, spawn, stop_process, wait_for_port
from service.store.client import connect
from service.store.command_outcomes import CommandOutcomeStore
from service.store.effect_runner import LocalEffects
from service.store.entitlements import EntitlementStore
from service.store.orders import OrderStore
from service.store.outbox import Destination, OutboxEntry
from service.store.timers import TimerStore
from testkit.factories import prebooking

WARM_UP_BATCHES = 3


class KeepingRequests:
    """A publisher that keeps the reserve requests (to answer them) and drops the rest."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []

    async def publish(self, entries: Sequence[OutboxEntry]) -> None:
        self.requests += [e.value for e in entries if e.destination is Destination.RESOURCE_REQUESTS]


def _record(topic: str, key: str, value: bytes, offset: int) -> ConsumerRecord:
    return ConsumerRecord(topic, 0, offset, 0, 0, key.encode(), value, None, len(key), len(value), [])


def _confirmation(request: bytes, offset: int) -> ConsumerRecord:
    fields = jiter.from_json(request)
    reply = {
        "type": "confirmed",
        "reply_id": f"{fields['request_id']}/reply",
        "order_id": fields["order_id"],
        "reservation_id": fields["reservation_id"],
    }
    return _record("resources.replies", fields["order_id"], json.dumps(reply).encode(), offset)


async def measure(url: str, batches: int, size: int, profile: str | None) -> float:
    """CPU seconds per order over `batches` batches of `size` orders, after a warm-up."""
    redis = connect(url, reply_timeout=None)
    store, entitlements, timers = OrderStore(redis), EntitlementStore(redis), TimerStore(redis)
    await store.load_scripts()
    publisher = KeepingRequests()
    processor = OrderProcessor(
        store=store,
        entitlements=entitlements,
        effects=LocalEffects(entitlements, timers, store, CommandOutcomeStore(redis)),
        publisher=publisher,
        clock=utc_now,
        policy=policy_from(Settings()),
    )
    commands, replies = command_decoder(1 << 20), reply_decoder(1 << 20)
    workload = [
        [_record("orders.commands", c.order_id, c.model_dump_json().encode(), n) for n, c in enumerate(batch)]
        for batch in ([prebooking("RES-OK") for _ in range(size)] for _ in range(WARM_UP_BATCHES + batches))
    ]
    profiler = cProfile.Profile() if profile else None
    _settle_heap()
    spent = 0.0
    for number, records in enumerate(workload):
        measured = number >= WARM_UP_BATCHES
        if profiler and measured:
            profiler.enable()
        started = time.process_time()
        now = utc_now()
        await processor.process([_inbound(commands.decode(r, now)) for r in records])
        requests, publisher.requests = publisher.requests, []
        now = utc_now()
        answers = [_confirmation(request, n) for n, request in enumerate(requests)]
        await processor.process([_inbound(replies.decode(r, now)) for r in answers])
        if measured:
            spent += time.process_time() - started
        if profiler and measured:
            profiler.disable()
    if profiler and profile:
        profiler.dump_stats(profile)
    await redis.aclose()
    return spent / (batches * size)


def _inbound(decoded: object) -> Inbound:
    if not isinstance(decoded, Inbound):
        raise TypeError(f"the workload's message was refused: {decoded!r}")
    return decoded


def main() -> None:
    """Start a throwaway redis-server, measure, print."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=40, help="measured batches (after 3 of warm-up)")
    parser.add_argument("--size", type=int, default=100, help="orders per batch")
    parser.add_argument("--profile", help="write a cProfile of the measured batches to this file")
    args = parser.parse_args()
    port = free_port()
    server = spawn([redis_server_binary(), "--port", str(port), "--save", "", "--appendonly", "no"])
    try:
        wait_for_port(port, server, "redis-server")
        per_order = asyncio.run(measure(f"redis://127.0.0.1:{port}/0", args.batches, args.size, args.profile))
    finally:
        stop_process(server)
    print(f"processor CPU per order (create, then confirm): {per_order * 1000:.3f} ms")


if __name__ == "__main__":
    main()
