"""Replay: after a run, rewind the service's consumer groups to offset 0 on the commands and replies topics,
let it consume everything again, and check that nothing changed and nothing new was published.

    make bench-replay                       # 5,000 orders
    make bench-replay ARGS="--orders 20000"
    make bench-replay ARGS=--smoke          # what CI runs

How the re-consumption is done: the service is stopped (SIGTERM), both of its groups (`<group>.commands`,
`<group>.replies`) are rewound to offset 0 by joining them and committing 0 on every partition, the way an
operator resets a group, and the same `orders service` is started again. It resumes from the committed 0,
so every record goes through the real consumers, decoder and processor once more. (A fresh group name
would re-read everything too, but only through `auto_offset_reset`; the rewind exercises the committed
position an operator would set.) "Finished" is when both groups' committed offsets reach the end offsets
the topics had when the replay began, read from the broker, not guessed by waiting.

The run's workload is the crash loop's, waitlists, no-shows and changes included (`bench.orders_workload`).

Verdicts: every order's stored state, version, applied inputs and outbox, every entitlement balance, every
command-id claim, the client's order index, the four timer sets and the anomaly log are exactly as before; the
status, rejection, dead-letter and resource-request topics got no new record; the service counted every
re-consumed record as a duplicate and applied none. Exits 1 if any verdict fails.
"""

import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from bench.consumer_offsets import GroupOffsets, Offsets, await_committed, end_offsets, rewind_group, total
from bench.harness import Report, Run, parser, run
from bench.orders_workload import (
    CLIENT_ID,
    PIPELINE_SETTINGS,
    Observation,
    Options,
    Pipeline,
    Workload,
    add_workload_arguments,
    announce,
    await_outcome,
    build_workload,
    check_clean_exits,
    finish,
    grant_entitlements,
    log_directory,
    send_paced,
    service_groups,
    verify_outcome,
)
from service.config import Settings
from service.devstack import free_port
from service.store.keys import (
    ANOMALIES,
    CHANGE_TIMERS,
    CONFIRMATION_TIMERS,
    NO_SHOW_TIMERS,
    WAITLIST_TIMERS,
    client_orders_key,
    command_claim_key,
    entitlement_key,
    history_key,
    order_keys,
)

SMOKE = {"orders": 400, "rate": 100.0}


async def snapshot(redis: "Redis", workload: Workload) -> dict[str, Any]:
    """Every Redis key the workload's inputs touch (the orders' hashes and histories, balances, claims,
    timers, listing, anomalies), read in full: key → value."""
    hashes = [key for order_id in workload.expected_status for key in order_keys(CLIENT_ID, order_id)]
    hashes += [entitlement_key(CLIENT_ID, credential) for credential in workload.granted]
    histories = {history_key(CLIENT_ID, order_id) for order_id in workload.expected_status}
    claims = [command_claim_key(c.client_id, c.command_id) for c in workload.commands]
    found: dict[str, Any] = {}
    for start in range(0, len(hashes), 1000):
        chunk = hashes[start : start + 1000]
        async with redis.pipeline(transaction=False) as pipe:
            for key in chunk:
                if key in histories:
                    pipe.lrange(key, 0, -1)  # the order's history: a list, which a replay must not grow
                else:
                    pipe.hgetall(key)
            found.update(zip(chunk, await pipe.execute(), strict=True))
    for start in range(0, len(claims), 1000):
        chunk = claims[start : start + 1000]
        found.update(zip(chunk, await redis.mget(chunk), strict=True))
    timers = (CONFIRMATION_TIMERS, WAITLIST_TIMERS, NO_SHOW_TIMERS, CHANGE_TIMERS)
    for key in (client_orders_key(CLIENT_ID), *timers):
        found[key] = await redis.zrange(key, 0, -1, withscores=True)
    found[ANOMALIES] = (await redis.xlen(ANOMALIES), await redis.xrevrange(ANOMALIES, count=1))
    return found


async def scrape(port: int) -> dict[str, float]:
    """The service's counters by sample name and labels, e.g. `orders_inputs_duplicate_total{kind=reply}`."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


def counted(metrics: dict[str, float], prefix: str) -> float:
    """The sum of every sample whose name (with labels) starts with `prefix`."""
    return sum(value for name, value in metrics.items() if name.startswith(prefix))


@dataclass
class Replayed:
    """What the replay saw: stored state and the topics' ends before and after, and the service's counts."""

    records: dict[str, int]
    """Per kind of input (command, reply): the records on its topic when the replay began."""
    rewound: bool
    reconsumed: bool
    seconds: float
    before: dict[str, Any]
    after: dict[str, Any]
    outputs_before: Offsets
    outputs_after: Offsets
    counters: dict[str, float]
    exit_codes: dict[str, int]


async def replay_inputs(
    run: Run,
    pipeline: Pipeline,
    groups: list[GroupOffsets],
    workload: Workload,
    metrics_port: int,
    stall_seconds: float,
) -> Replayed:
    """Rewind the stopped service's groups to 0, start it, wait until it committed up to the end again, and
    stop everything."""
    settings = run.settings
    bootstrap = settings.kafka_bootstrap_servers
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        before = await snapshot(redis, workload)
        outputs_before = await end_offsets(bootstrap, output_topics(settings))
        inputs = {g.group: await g.end_offsets() for g in groups}
        topics = service_groups(settings)
        for group in groups:
            await rewind_group(bootstrap, group.group, topics[group.group])
        rewound = [total(await g.committed()) == 0 for g in groups]
        announce(f"rewound {', '.join(g.group for g in groups)} to offset 0; restarting the service")
        await pipeline.service.start()
        await pipeline.service.wait_ready()
        started = time.monotonic()
        reconsumed = await await_committed(groups, inputs, "records re-consumed", stall_seconds)
        seconds = time.monotonic() - started
        counters = await scrape(metrics_port)
        exit_codes = await pipeline.stop()
        return Replayed(
            records={
                "command": total(inputs[f"{settings.consumer_group}.commands"]),
                "reply": total(inputs[f"{settings.consumer_group}.replies"]),
            },
            rewound=all(rewound),
            reconsumed=reconsumed,
            seconds=seconds,
            before=before,
            after=await snapshot(redis, workload),
            outputs_before=outputs_before,
            outputs_after=await end_offsets(bootstrap, output_topics(settings)),
            counters=counters,
            exit_codes=exit_codes,
        )
    finally:
        await redis.aclose()


def output_topics(settings: Settings) -> list[str]:
    """Everything the service publishes to."""
    return [
        settings.topic_status_changed,
        settings.topic_command_rejected,
        settings.topic_dead_letter,
        settings.topic_resource_requests,
    ]


def judge(report: Report, run: Run, workload: Workload, replayed: Replayed) -> None:
    """The replay's verdicts."""
    report.check("groups rewound to offset 0", replayed.rewound)
    report.check(
        "re-consumed to the end",
        replayed.reconsumed,
        f"{sum(replayed.records.values()):,} records on the commands and replies topics",
    )
    before, after = replayed.before, replayed.after
    changed = {key for key in before if before[key] != after[key]}
    changed_orders = [o for o in workload.expected_status if changed.intersection(order_keys(CLIENT_ID, o))]
    report.check(
        "no order changed",
        not changed_orders,
        f"{len(changed_orders)} of {workload.orders:,} (state, version, inputs, outbox)"
        + (f" {changed_orders[:3]}" if changed_orders else ""),
    )
    credentials = {entitlement_key(CLIENT_ID, c) for c in workload.granted}
    report.check(
        "entitlement balances unchanged",
        not changed & credentials,
        f"{len(changed & credentials)} of {len(credentials)} credentials changed",
    )
    order_key_set = {k for o in workload.expected_status for k in order_keys(CLIENT_ID, o)}
    other = sorted(changed - order_key_set - credentials)
    report.check(
        "claims, index, timers and anomalies unchanged",
        not other,
        f"{len(other)} keys changed" + (f" {other[:3]}" if other else ""),
    )
    new_records = {
        topic: sum(v for tp, v in replayed.outputs_after.items() if tp.topic == topic)
        - sum(v for tp, v in replayed.outputs_before.items() if tp.topic == topic)
        for topic in output_topics(run.settings)
    }
    report.check(
        "no new events, rejections, dead letters or requests",
        not any(new_records.values()),
        ", ".join(f"{topic.split('.', 1)[1]} +{n}" for topic, n in new_records.items()),
    )
    duplicates = {
        kind: counted(replayed.counters, f"orders_inputs_duplicate_total{{kind={kind}}}")
        for kind in replayed.records
    }
    applied = counted(replayed.counters, "orders_inputs_applied_total")
    report.check(
        "every re-consumed record seen as a duplicate, none applied",
        all(duplicates[kind] >= records for kind, records in replayed.records.items()) and applied == 0,
        "; ".join(
            f"{kind} records {records:,}, seen as duplicates {duplicates[kind]:,.0f}"
            for kind, records in replayed.records.items()
        )
        + f"; {applied:,.0f} applied",
    )
    report.add("records re-consumed", sum(replayed.records.values()))
    report.add("keys compared", len(before))
    report.add("re-consumed in (from consumers assigned)", round(replayed.seconds, 1), "s")
    report.add("replay rate", round(sum(replayed.records.values()) / replayed.seconds), "records/s")


async def replay(run: Run, options: Options) -> Report:
    """A run, then a replay of its inputs; the report holds the verdicts about both."""
    report = Report("replay", options.parameters())
    started = time.monotonic()
    settings = run.settings
    bootstrap = settings.kafka_bootstrap_servers
    stall_seconds = options.stall_seconds
    workload = build_workload(options.orders, random.Random(options.seed), lifecycle=True)
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    await grant_entitlements(redis, workload)
    await redis.aclose()
    logs = log_directory("replay")
    metrics_port = free_port()
    # No relay: webhooks are downstream of the status topic, whose silence is what is checked here.
    pipeline = Pipeline(run, logs, relay=False, service_env={"ORDERS_METRICS_PORT": str(metrics_port)})
    groups = [GroupOffsets(bootstrap, group, topics) for group, topics in service_groups(settings).items()]
    observation: Observation | None = None
    try:
        await pipeline.start()
        observation = await Observation.start(run, workload, pipeline)
        for group in groups:
            await group.start()
        # The first pass, the run to be replayed: consumed to its end, then the service stopped.
        await send_paced(bootstrap, settings.topic_commands, workload, options.send_seconds)
        await await_outcome(observation, workload, stall_seconds)
        ends = {g.group: await g.end_offsets() for g in groups}
        consumed = await await_committed(groups, ends, "first pass consumed", stall_seconds)
        first_exit = await pipeline.service.stop()
        await verify_outcome(report, run, workload, observation)
        report.check("first pass consumed to the end", consumed)

        replayed = await replay_inputs(run, pipeline, groups, workload, metrics_port, stall_seconds)
    finally:
        if observation is not None:
            await observation.stop()
        for group in groups:
            await group.stop()
        await pipeline.abort()

    judge(report, run, workload, replayed)
    check_clean_exits(report, {"service (first pass)": first_exit, **replayed.exit_codes})
    report.add("duration", round(time.monotonic() - started, 1), "s")
    return finish(report, logs, options.keep_logs)


def main() -> None:
    cli = parser(__doc__.split("\n\n")[0])
    add_workload_arguments(cli, orders=5_000, rate=250.0)
    args = cli.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)

    options = Options.from_args(args)

    async def benchmark(run_: Run) -> Report:
        return await replay(run_, options)

    run(benchmark, args, **PIPELINE_SETTINGS)


if __name__ == "__main__":
    main()
