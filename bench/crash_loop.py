"""Crash loop: SIGKILL the order service, the relay or both at random moments of a paced run, restarting
each time, then check that nothing was lost, stuck, doubled or left undelivered. The workload includes
waitlisted prebookings, no-shows (a Redis timer firing across the kills) and order changes (sent once their
order is Confirmed) besides the usual orders.

    make bench-crash_loop                                  # 20,000 orders, 10 kills, service and relay
    make bench-crash_loop ARGS="--target relay --kills 6"
    make bench-crash_loop ARGS=--smoke                     # what CI runs

Exits 1 if any verdict fails (see `bench.orders_workload` for the verdicts).
"""

import asyncio
import random
import time

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

TARGETS = ("service", "relay", "both")
SMOKE = {"orders": 800, "rate": 40.0, "kills": 8, "target": "both"}


async def kill_at_random(
    victims: list[OrdersProcess], kills: int, seconds: float, rng: random.Random
) -> dict[str, int]:
    """SIGKILL and restart `kills` times at random moments within `seconds`, taking the victims in turn.

    Each kill waits until its victim consumes again (a process killed while it starts up tests little),
    then strikes a random moment into its work. Returns the kills per process.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    moments = sorted(rng.uniform(0.05, 0.95) * seconds for _ in range(kills))
    done = {victim.subcommand: 0 for victim in victims}
    for n, moment in enumerate(moments):
        victim = victims[n % len(victims)]
        await asyncio.sleep(max(0.0, started + moment - loop.time()))  # the random moment
        await victim.wait_ready()
        await asyncio.sleep(rng.uniform(0.1, 1.0))  # somewhere inside its batches or deliveries
        pid = victim.pid
        await victim.kill()
        await victim.start()
        done[victim.subcommand] += 1
        announce(f"SIGKILL {victim.subcommand} (pid {pid}) at {loop.time() - started:.1f} s; restarted")
    for victim in victims:
        # The run may end right after the last restart: SIGTERM before the signal handlers are installed
        # would kill the process undrained (-15) instead of stopping it.
        await victim.wait_ready()
        async with asyncio.timeout(60):
            await victim.started.wait()
    return done


async def crash_loop(run: Run, options: Options, *, kills: int, target: str) -> Report:
    """One crash-loop run on `run`'s stack; the report holds the verdicts."""
    rng = random.Random(options.seed)
    report = Report("crash_loop", {**options.parameters(), "kills": kills, "target": target})
    started = time.monotonic()
    workload = build_workload(options.orders, rng, lifecycle=True)
    redis = Redis.from_url(run.settings.redis_url.get_secret_value())
    await grant_entitlements(redis, workload)
    await redis.aclose()
    logs = log_directory("crash_loop")
    pipeline = Pipeline(run, logs)
    observation: Observation | None = None
    try:
        await pipeline.start()
        observation = await Observation.start(run, workload, pipeline)
        assert pipeline.relay is not None
        victims = {
            "service": [pipeline.service],
            "relay": [pipeline.relay],
            "both": [pipeline.service, pipeline.relay],
        }[target]
        seconds = options.send_seconds
        bootstrap, topic = run.settings.kafka_bootstrap_servers, run.settings.topic_commands
        sending = asyncio.create_task(send_paced(bootstrap, topic, workload, seconds))
        killed = await kill_at_random(victims, kills, seconds, rng)
        send_seconds = await sending
        timings = await await_outcome(observation, workload, options.stall_seconds)
        codes = await pipeline.stop()
    finally:
        if observation is not None:
            await observation.stop()
        await pipeline.abort()

    assert observation is not None
    await verify_outcome(report, run, workload, observation)
    check_clean_exits(report, codes)
    for name, count in killed.items():
        report.add(f"kills of the {name}", count)
    report.add("send duration", round(send_seconds, 1), "s")
    report.add("settled after sending began", round(timings["settle_seconds"] + send_seconds, 1), "s")
    report.add("delivered after sending began", round(timings["deliver_seconds"] + send_seconds, 1), "s")
    report.add("duration", round(time.monotonic() - started, 1), "s")
    return finish(report, logs, options.keep_logs)


def main() -> None:
    cli = parser(__doc__.split("\n\n")[0])
    add_workload_arguments(cli, orders=20_000, rate=250.0)
    cli.add_argument("--kills", type=int, default=10, help="SIGKILLs in the run (10)")
    cli.add_argument("--target", choices=TARGETS, default="both", help="what is killed (both: in turn)")
    args = cli.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)

    options = Options.from_args(args)

    async def benchmark(run_: Run) -> Report:
        return await crash_loop(run_, options, kills=args.kills, target=args.target)

    run(benchmark, args, **PIPELINE_SETTINGS)


if __name__ == "__main__":
    main()
