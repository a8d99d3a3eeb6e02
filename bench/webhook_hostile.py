"""Webhook relay among hostile endpoints: one client's 64 hanging endpoints beside another client's healthy
one (`make bench-webhook_chaos ARGS=--hostile`, or `ARGS="--hostile --smoke"` for CI).

Two runs, each with `orders relay` as a child process and events published straight onto the status topic:

1. Control: the victim client's one healthy endpoint (`bench.receiver`, its own process) gets `--rate`
   events/s for `--seconds`; latency runs from publishing an event to its delivery's arrival.
2. Attack: the same, while an attacker client has 64 endpoints that never answer within the relay's timeout
   (one loopback receiver behind them all), each with a backlog of the attacker's events
   (`--attacker-orders`, 64 by default: more queues than slots at every endpoint) and retries coming due all
   the time. Its breaker is out of reach (`ORDERS_RELAY_BREAKER_FAILURES` high): the worst case, an
   attacker whose attempts keep their slots for as long as the relay lets them.

Target: the victim's p99 latency under attack within 2x the control's (the per-client cap,
`ORDERS_RELAY_CONCURRENCY_PER_CLIENT`, leaves the attacker its share of the relay's connections and no more).
Checks: every victim event delivered once in both runs; the attacker's endpoints really were attempted; the
relay exits cleanly.
"""

import argparse
import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from bench.harness import OrdersProcess, Report, Run, percentiles
from bench.receiver import ReceiverProcess
from bench.relay import Event, make_events, publish_all, publish_at_rate
from service.store.webhook_endpoints import EndpointStore
from testkit.webhook_receiver import WebhookReceiver

ATTACKER_ENDPOINTS = 64
TARGET_P99_RATIO = 2.0
RELAY_TIMEOUT_SECONDS = 2.0
RETRY_SCHEDULE_SECONDS = [0.2] * 20
"""Retries come due all the time, so the attacker's endpoints always have attempts waiting."""
SETTINGS: dict[str, Any] = {
    "relay_timeout_seconds": RELAY_TIMEOUT_SECONDS,
    "relay_retry_schedule_seconds": RETRY_SCHEDULE_SECONDS,
    "relay_jitter": 0.0,
    "relay_breaker_failures": 10**6,
}
"""What `bench.webhook_chaos --hostile` runs the relay with."""


class HangingReceiver(WebhookReceiver):
    """Counts the requests it gets, and answers each only long after the relay has given up on it."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        await asyncio.sleep(RELAY_TIMEOUT_SECONDS * 3)  # the attack: holding the connection, not a wait
        return web.Response(status=504)


def with_client(events: Sequence[Event], client_id: str) -> list[Event]:
    """The events as another client's (`bench.relay.make_events` writes its own client id)."""
    old = b'"client_id":"bench-relay"'
    new = f'"client_id":"{client_id}"'.encode()
    return [Event(e.event_id, e.order_id, e.sequence, e.body.replace(old, new)) for e in events]


async def victim_latencies(
    run_: Run, args: argparse.Namespace, report: Report, redis: Redis, *, attacked: bool
) -> list[float]:
    """One run: the victim's publish → delivery latencies (ms), with or without the attacker."""
    name = "attack" if attacked else "control"
    run_id = uuid.uuid4().hex[:6]
    victim_client, attacker_client = f"victim-{run_id}", f"attacker-{run_id}"
    receiver = ReceiverProcess(run_.workdir, sample_every=10**9)
    hanging = HangingReceiver()
    await receiver.start()
    await hanging.start()
    store = EndpointStore(redis)
    await store.create(victim_client, receiver.url, datetime.now(UTC))
    relay = OrdersProcess("relay", run_.environ(), run_.workdir / f"relay-{name}.log")
    producer = AIOKafkaProducer(bootstrap_servers=run_.settings.kafka_bootstrap_servers, acks="all")
    topic = run_.settings.topic_status_changed
    victim = with_client(make_events(f"ORD-{run_id}-V", int(args.rate * args.seconds)), victim_client)
    warmup = with_client(make_events(f"ORD-{run_id}-W", 4), victim_client)
    try:
        await relay.start()
        await producer.start()
        await relay.wait_ready()
        if attacked:
            for _ in range(ATTACKER_ENDPOINTS):  # beyond the API's bound: the relay must not rely on it
                await store.create(attacker_client, hanging.url, datetime.now(UTC), limit=ATTACKER_ENDPOINTS)
            attacker = make_events(f"ORD-{run_id}-A", args.attacker_orders)
            await publish_all(producer, topic, with_client(attacker, attacker_client))
            # Queued (64 x its events) and attempted: its attempts fill what the relay lets them.
            await asyncio.sleep(RELAY_TIMEOUT_SECONDS * 3)
        # Warm-up, in both runs: the consumer's first fetches and the connection, outside the measurement.
        await publish_all(producer, topic, warmup)
        await receiver.wait_for_count(len(warmup), within=60)
        await receiver.reset()
        sent = await publish_at_rate(producer, topic, victim, args.rate)
        await receiver.wait_for_count(len(victim), args.seconds + 60)
        arrivals = await receiver.arrivals()
        exit_code = await relay.stop()
    finally:
        if relay.process is not None and relay.process.returncode is None:
            await relay.kill()
        await producer.stop()
        await receiver.stop()
        await hanging.stop()
    ids = [a.webhook_id for a in arrivals]
    report.check(
        f"{name}: every victim event delivered once",
        sorted(ids) == sorted(e.event_id for e in victim),
        f"{len(set(ids))} of {len(victim)}, {len(ids) - len(set(ids))} twice",
    )
    report.check(f"{name}: relay exited cleanly on SIGTERM", exit_code == 0, f"exit code {exit_code}")
    if attacked:
        report.check(
            "attack: the attacker's endpoints were attempted",
            hanging.attempts >= ATTACKER_ENDPOINTS,
            f"{hanging.attempts} attempts, none answered in time",
        )
    return [(a.at - sent[a.webhook_id]) * 1000 for a in arrivals if a.webhook_id in sent]


async def benchmark(run_: Run, args: argparse.Namespace) -> Report:
    report = Report(
        "webhook_hostile",
        {
            "rate": args.rate,
            "seconds": args.seconds,
            "attacker_endpoints": ATTACKER_ENDPOINTS,
            "attacker_orders": args.attacker_orders,
            "concurrency_per_client": getattr(run_.settings, "relay_concurrency_per_client", None),
        },
    )
    redis = Redis.from_url(run_.settings.redis_url.get_secret_value())
    try:
        control = await victim_latencies(run_, args, report, redis, attacked=False)
        attack = await victim_latencies(run_, args, report, redis, attacked=True)
    finally:
        await redis.aclose()
    for name, samples in (("control", control), ("attack", attack)):
        for point, value in percentiles(samples).items():
            report.add(f"victim latency {point}, {name}", value, "ms")
    ratio = percentiles(attack)["p99"] / percentiles(control)["p99"]
    report.add(
        "victim p99 under attack / control",
        ratio,
        "x",
        target=f"<= {TARGET_P99_RATIO:.0f}",
        met=ratio <= TARGET_P99_RATIO,
    )
    return report
