"""Scale-out: two service instances and two relay instances share their consumer groups; one of each dies.

    make bench-scale_out                      # 10,000 orders at 250/s
    make bench-scale_out ARGS="--smoke"       # CI size

Runs two `orders service` and two `orders relay` processes in the same consumer groups, with the
resource simulator and a webhook receiver (the crash loop's workload, `bench/orders_workload.py`). Once
both instances of each own partitions, it SIGKILLs the second service and the second relay partway
through the send, and does not restart them: their partitions must move to the survivors, which finish
the run alone.

Verdicts: each instance owned partitions before the kill, and the survivors own all of them after it;
then the crash loop's: every order in its expected final status, event sequences 1..n with one event id
each, exact entitlement balances, empty outboxes, no webhook delivery missing or out of order, and the
survivors exit 0 on SIGTERM.
"""

import asyncio
import json
import random
import time
from pathlib import Path

from redis.asyncio import Redis

from bench.harness import OrdersProcess, Report, Run, parser, run
from bench.orders_workload import (
    PIPELINE_SETTINGS,
    Observation,
    Options,
    Pipeline,
    add_workload_arguments,
    announce,
    await_outcome,
    build_workload,
    check_clean_exits,
    finish,
    grant_entitlements,
    log_directory,
    send_paced,
    verify_outcome,
)

SMOKE = {"orders": 600, "rate": 60.0}
KILL_AT = 0.4
"""How far into the send the second instances die."""


def owned_partitions(log: Path) -> dict[str, set[int]]:
    """Topic → the partitions the process was last assigned, from FastStream's rebalance log lines."""
    owned: dict[str, set[int]] = {}
    for line in log.read_text(errors="replace").splitlines():
        if "assigned to partitions" not in line:
            continue
        record = json.loads(line)
        parts = record.get("event", "").split("partition=")[1:]
        owned[record["topic"]] = {int(part.split(")", 1)[0]) for part in parts}
    return owned


async def until_owned(
    processes: list[OrdersProcess], topics: list[str], partitions: int, within: float, *, all_of: bool
) -> dict[str, dict[str, set[int]]]:
    """Wait until each process owns partitions of every topic (all of them if `all_of`); returns what each
    owns by then. Assignments are only announced in the processes' logs, so they are read again."""
    deadline = time.monotonic() + within
    while True:
        owned = {p.name: owned_partitions(p.log_path) for p in processes}
        done = all(
            (len(owned[p.name].get(t, set())) == partitions) if all_of else bool(owned[p.name].get(t))
            for p in processes
            for t in topics
        )
        if done or time.monotonic() > deadline:
            return owned
        await asyncio.sleep(0.2)  # nothing announces a rebalance but the log


def describe(owned: dict[str, dict[str, set[int]]]) -> str:
    return "; ".join(
        f"{name}: " + ", ".join(f"{topic.rsplit('.', 1)[-1]} {sorted(p)}" for topic, p in topics.items())
        for name, topics in owned.items()
    )


async def scale_out(bench: Run, options: Options) -> Report:
    """One scale-out run on `bench`'s stack; the report holds the verdicts."""
    rng = random.Random(options.seed)
    report = Report("scale_out", options.parameters())
    started = time.monotonic()
    settings = bench.settings
    workload = build_workload(options.orders, rng, lifecycle=True)
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    await grant_entitlements(redis, workload)
    await redis.aclose()
    logs = log_directory("scale_out")
    pipeline = Pipeline(bench, logs, instances=2)
    observation: Observation | None = None
    service_topics = [settings.topic_commands, settings.topic_resource_replies]
    relay_topics = [settings.topic_status_changed]
    partitions = settings.topic_partitions
    topics_of = {p.name: service_topics for p in pipeline.services} | {
        p.name: relay_topics for p in pipeline.relays
    }
    try:
        await pipeline.start()
        observation = await Observation.start(bench, workload, pipeline)
        sending = asyncio.create_task(
            send_paced(
                settings.kafka_bootstrap_servers, settings.topic_commands, workload, options.send_seconds
            )
        )
        # Both instances of each joined their groups at start; the groups settle into sharing meanwhile.
        shared = await until_owned(pipeline.services, service_topics, partitions, 30, all_of=False)
        shared |= await until_owned(pipeline.relays, relay_topics, partitions, 30, all_of=False)
        await asyncio.sleep(options.send_seconds * KILL_AT)  # pacing: the kill comes partway through
        victims = [pipeline.services[1], pipeline.relays[1]]
        for victim in victims:
            await victim.kill()
        announce(f"SIGKILL {', '.join(v.name for v in victims)}; not restarted")
        survivors = [pipeline.services[0]], [pipeline.relays[0]]
        taken = await until_owned(survivors[0], service_topics, partitions, 60, all_of=True)
        taken |= await until_owned(survivors[1], relay_topics, partitions, 60, all_of=True)
        send_seconds = await sending
        timings = await await_outcome(observation, workload, options.stall_seconds)
        pipeline.services.pop()
        pipeline.relays.pop()
        codes = await pipeline.stop()
    finally:
        if observation is not None:
            await observation.stop()
        await pipeline.abort()

    assert observation is not None
    report.check(
        "every instance owned partitions before the kill",
        all(shared[name].get(t) for name in shared for t in topics_of[name]),
        describe(shared),
    )
    report.check(
        "the survivors own every partition after it",
        all(len(taken[name].get(t, set())) == partitions for name in taken for t in topics_of[name]),
        describe(taken),
    )
    await verify_outcome(report, bench, workload, observation)
    check_clean_exits(report, codes)
    report.add("send duration", round(send_seconds, 1), "s")
    report.add("settled after sending began", round(timings["settle_seconds"] + send_seconds, 1), "s")
    report.add("delivered after sending began", round(timings["deliver_seconds"] + send_seconds, 1), "s")
    report.add("duration", round(time.monotonic() - started, 1), "s")
    return finish(report, logs, options.keep_logs)


def main() -> None:
    cli = parser((__doc__ or "").split("\n\n")[0])
    add_workload_arguments(cli, orders=10_000, rate=250.0)
    args = cli.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    options = Options.from_args(args)

    async def benchmark(bench: Run) -> Report:
        return await scale_out(bench, options)

    run(benchmark, args, **PIPELINE_SETTINGS)


if __name__ == "__main__":
    main()
