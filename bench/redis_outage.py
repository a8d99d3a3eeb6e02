"""Redis outage: stop Redis for 10 s in the middle of a paced run and start it again. The service and the
relay must commit no offset while it is down, resume by themselves, and the crash-loop verdicts must hold.

    make bench-redis_outage                     # 5,000 orders, Redis down 10 s
    make bench-redis_outage ARGS="--outage-seconds 30"
    make bench-redis_outage ARGS=--smoke        # what CI runs

Redis runs with AOF (appendonly yes), and is stopped with SIGTERM, so it comes back with every write it
acknowledged. This needs the embedded Redis, which the benchmark can stop: with REDIS_URL set it exits 2
at once. Exits 1 if any verdict fails.

While Redis is down the consumer groups' committed offsets are read every 100 ms. A batch that finished
all its Redis work before Redis went away may still commit just after; `--commit-grace` (default 1 s)
allows for that. Any commit later in the outage is a violation, and the load keeps coming throughout (the
benchmark checks that it did), so a consumer that acknowledged input it could not store would show.
"""

import asyncio
import os
import random
import sys
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis

from bench.consumer_offsets import GroupOffsets, end_offsets, total
from bench.harness import Report, Run, parser, run
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
    service_groups,
    verify_outcome,
)

SMOKE = {"orders": 600, "rate": 40.0, "outage_seconds": 4.0}
SAMPLE_SECONDS = 0.1


@dataclass
class CommitLog:
    """The committed offsets (summed over partitions) of each watched group, sampled over the run."""

    groups: list[GroupOffsets]
    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)

    async def record(self) -> None:
        """Sample until cancelled: committed offsets announce themselves to nobody."""
        while True:
            committed = {g.group: total(await g.committed()) for g in self.groups}
            self.samples.append((time.monotonic(), committed))
            await asyncio.sleep(SAMPLE_SECONDS)

    def between(self, start: float, end: float) -> list[dict[str, int]]:
        return [sample for at, sample in self.samples if start <= at <= end]

    def first_move_after(self, start: float, group: str, beyond: int) -> float | None:
        """Seconds from `start` until the group's committed total first exceeded `beyond`."""
        for at, sample in self.samples:
            if at >= start and sample[group] > beyond:
                return at - start
        return None


@dataclass
class Outage:
    """When Redis went down and came back (monotonic seconds), and the input sent meanwhile."""

    down: float
    restarting: float
    up: float
    commands_sent_meanwhile: int


async def take_redis_down(run: Run, seconds: float, commands: list[str]) -> Outage:
    """Stop the embedded Redis (SIGTERM: AOF flushed), keep it down `seconds`, start it again."""
    bootstrap = run.settings.kafka_bootstrap_servers
    # The stack's start/stop block until Redis is gone or answers; the receiver and the tap run on this loop.
    await asyncio.to_thread(run.stack.stop_redis)
    down = time.monotonic()
    announce(f"Redis stopped; down for {seconds:g} s")
    sent_before = total(await end_offsets(bootstrap, commands))
    await asyncio.sleep(seconds)  # the outage itself
    sent_during = total(await end_offsets(bootstrap, commands)) - sent_before
    restarting = time.monotonic()
    await asyncio.to_thread(run.stack.start_redis)
    announce("Redis started again (from its AOF)")
    return Outage(down, restarting, time.monotonic(), sent_during)


def judge_commits(
    report: Report, log: CommitLog, outage: Outage, grace: float, names: dict[str, str]
) -> None:
    """No group committed between `grace` after Redis went down and its restart; each resumed afterwards."""
    window = log.between(outage.down + grace, outage.restarting)
    at_down = log.between(outage.down, outage.down + grace)
    for group, name in names.items():
        values = [sample[group] for sample in window]
        moved = max(values) - min(values) if values else 0
        in_grace = (values[0] if values else 0) - (at_down[0][group] if at_down else 0)
        report.check(
            f"{name}: no offset committed while Redis was down",
            bool(values) and moved == 0,
            f"{moved} records committed in {len(values)} samples over"
            f" {outage.restarting - outage.down - grace:.1f} s; {in_grace} just after it went down",
        )
        resumed = log.first_move_after(outage.up, group, values[-1] if values else 0)
        report.add(
            f"{name}: first commit after Redis was back",
            round(resumed, 2) if resumed is not None else "never",
            "s" if resumed is not None else "",
        )


async def redis_outage(
    run: Run, options: Options, *, outage_seconds: float, outage_at: float, commit_grace: float
) -> Report:
    """A paced run with Redis stopped for `outage_seconds` at `outage_at` of the sending time."""
    report = Report(
        "redis_outage", {**options.parameters(), "outage_seconds": outage_seconds, "outage_at": outage_at}
    )
    started = time.monotonic()
    settings = run.settings
    bootstrap = settings.kafka_bootstrap_servers
    workload = build_workload(options.orders, random.Random(options.seed), lifecycle=True)
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    await grant_entitlements(redis, workload)
    await redis.aclose()
    logs = log_directory("redis_outage")
    pipeline = Pipeline(run, logs)
    groups = {**service_groups(settings), settings.relay_group: [settings.topic_status_changed]}
    names = {group: f"{group.rsplit('.', 1)[-1]} group" for group in groups}
    watched = [GroupOffsets(bootstrap, group, topics) for group, topics in groups.items()]
    commits = CommitLog(watched)
    observation: Observation | None = None
    recording: asyncio.Task[None] | None = None
    try:
        await pipeline.start()
        observation = await Observation.start(run, workload, pipeline)
        for group in watched:
            await group.start()
        recording = asyncio.create_task(commits.record())
        sending = asyncio.create_task(
            send_paced(bootstrap, settings.topic_commands, workload, options.send_seconds)
        )
        await asyncio.sleep(outage_at * options.send_seconds)  # mid-run, with traffic in flight
        outage = await take_redis_down(run, outage_seconds, [settings.topic_commands])
        send_seconds = await sending
        timings = await await_outcome(observation, workload, options.stall_seconds)
        # A process that died and stayed dead would show here: nothing restarts them in this benchmark.
        survived = {
            p.subcommand: p.process is not None and p.process.returncode is None for p in pipeline.processes
        }
        codes = await pipeline.stop()
    finally:
        if recording is not None:
            recording.cancel()
        if observation is not None:
            await observation.stop()
        for group in watched:
            await group.stop()
        await pipeline.abort()

    assert observation is not None
    judge_commits(report, commits, outage, commit_grace, names)
    report.check(
        "input kept coming during the outage",
        outage.commands_sent_meanwhile > 0,
        f"{outage.commands_sent_meanwhile:,} commands sent while Redis was down",
    )
    report.check(
        "processes ran through the outage",
        all(survived.values()),
        ", ".join(f"{name} {'running' if alive else 'EXITED'}" for name, alive in survived.items()),
    )
    await verify_outcome(report, run, workload, observation)
    check_clean_exits(report, codes)
    report.add("Redis down", round(outage.restarting - outage.down, 1), "s")
    report.add("Redis restart took", round(outage.up - outage.restarting, 2), "s")
    report.add("send duration", round(send_seconds, 1), "s")
    report.add("settled after sending began", round(timings["settle_seconds"] + send_seconds, 1), "s")
    report.add("delivered after sending began", round(timings["deliver_seconds"] + send_seconds, 1), "s")
    report.add("duration", round(time.monotonic() - started, 1), "s")
    return finish(report, logs, options.keep_logs)


def main() -> None:
    cli = parser(__doc__.split("\n\n")[0])
    add_workload_arguments(cli, orders=5_000, rate=100.0)
    cli.add_argument("--outage-seconds", type=float, default=10.0, help="how long Redis is down (10)")
    cli.add_argument(
        "--outage-at",
        type=float,
        default=0.3,
        help="when Redis goes down, as a share of the sending time (0.3)",
    )
    cli.add_argument(
        "--commit-grace",
        type=float,
        default=1.0,
        help="commits allowed this long after Redis went down, from batches it had already stored (1)",
    )
    args = cli.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    if os.environ.get("REDIS_URL"):
        print(
            "redis_outage: REDIS_URL is set, so Redis is not the embedded one that this benchmark can stop"
            " and start. Unset REDIS_URL (KAFKA_BOOTSTRAP_SERVERS may stay) to run it.",
            file=sys.stderr,
        )
        sys.exit(2)
    options = Options.from_args(args)

    async def benchmark(run_: Run) -> Report:
        return await redis_outage(
            run_,
            options,
            outage_seconds=args.outage_seconds,
            outage_at=args.outage_at,
            commit_grace=args.commit_grace,
        )

    run(benchmark, args, redis_append_only=True, **PIPELINE_SETTINGS)


if __name__ == "__main__":
    main()
