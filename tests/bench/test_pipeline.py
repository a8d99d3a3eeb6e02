"""CI smoke of the pipeline benchmark (`make bench-pipeline ARGS=--smoke`): every order of every phase gets
through the real service, and every message through the raw aiokafka baseline; the figures are consistent.
No speed is asserted: the smoke size on a shared CI machine says nothing about one."""

import asyncio
import math
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from bench.pipeline import Observer, hop_latencies
from tests.bench.running import assert_percentiles_consistent, assert_verdicts, figure, run_benchmark


@pytest.mark.timeout(300)
def test_pipeline_benchmark_runs_and_measures_both_pipes(tmp_path: Path) -> None:
    """Nothing missing in the fixed-rate, saturation and baseline phases, and each figure measured (with
    `--hops`, which adds each hop's latency to the figures)."""
    results = run_benchmark("pipeline", tmp_path, "--hops")

    assert_verdicts(
        results,
        "fixed phase: every order through",
        "saturation: every order through",
        "baseline: every order through",
    )
    for phase in ("fixed phase", "saturation", "baseline"):
        assert results["checks"][f"{phase}: every order through"]["value"] == "0 missing"
    assert_percentiles_consistent(results, "saturation latency {}")
    assert_percentiles_consistent(results, f"latency {{}} at {results['parameters']['offered_rate']:g}/s")
    assert_percentiles_consistent(results, "baseline saturation latency {}")
    saturation = figure(results, "saturation throughput")
    baseline = figure(results, "baseline throughput (raw aiokafka)")
    assert saturation > 0 and baseline > 0
    assert math.isclose(figure(results, "ratio to baseline"), saturation / baseline * 100)
    cpu = {name: row["value"] for name, row in results["figures"].items() if "CPU per " in name}
    assert any(name.startswith("CPU per order: service") for name in cpu), cpu
    assert all(seconds >= 0 for seconds in cpu.values()), cpu
    # The same run's yardstick: the service's CPU per order counted in forwarders in its place.
    forwarder = figure(results, "baseline CPU per order: baseline-0")
    multiple = figure(results, "CPU per order: service, all instances / the forwarder in its place")
    assert math.isclose(multiple, figure(results, "CPU per order: service, all instances") / forwarder)
    rate = f"{results['parameters']['offered_rate']:g}/s"
    for label in ("", "baseline "):
        p50, p99 = (figure(results, f"{label}broker acknowledgement {p} at {rate}") for p in ("p50", "p99"))
        assert 0 < p50 <= p99, (label, p50, p99)
        assert figure(results, f"{label}broker CPU at {rate}") > 0
        # Each hop is part of its order's whole trip, so each of its percentiles is at most the trip's.
        for point in ("p50", "p99"):
            whole = figure(results, f"{label}latency {point} at {rate}")
            for hop in ("command → request", "request → reply", "reply → Confirmed"):
                assert 0 < figure(results, f"{label}hop {hop} {point} at {rate}") <= whole, (label, hop)


def test_hops_are_timed_only_between_waypoints() -> None:
    """With waypoints, one latency list per hop, for the orders seen at both its ends; without them none
    (the whole pipe is not a hop, and was once reported as the first)."""
    batch = [("A", b""), ("B", b"")]
    sent, middle, observed = {"A": 0.0, "B": 0.0}, {"A": 0.010}, {"A": 0.030, "B": 0.040}

    assert hop_latencies(batch, [sent, observed]) == []
    hops = hop_latencies(batch, [sent, middle, observed])
    assert [[round(ms, 6) for ms in hop] for hop in hops] == [[10.0], [20.0]]


async def test_the_observer_reads_a_gap_in_a_partitions_offsets_again() -> None:
    """A fetch that returns a later batch without an earlier one (the embedded broker, two producers on one
    partition) leaves a gap: the observer seeks back to it, and counts the orders there once they come."""
    tp = TopicPartition("status", 1)

    def records(*offsets: int) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        made = [
            ConsumerRecord("status", 1, o, 0, 0, None, f"ORD-{o}".encode(), None, 0, 0, []) for o in offsets
        ]
        return {tp: made}

    fetched = [records(0, 1), records(4, 5), records(2, 3, 4, 5)]
    seeks: list[tuple[TopicPartition, int]] = []
    done = asyncio.Event()

    class Consumer:
        async def getmany(self, **_: object) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
            if fetched:
                return fetched.pop(0)
            done.set()
            await asyncio.Event().wait()  # nothing more, as a consumer at the end waits
            return {}

        def seek(self, partition: TopicPartition, offset: int) -> None:
            seeks.append((partition, offset))

    observer = Observer("unused:9092", "status", lambda value: value.decode(), 10)
    observer._consumer = Consumer()
    reading = asyncio.create_task(observer._read())
    await asyncio.wait_for(done.wait(), 5)
    reading.cancel()

    assert seeks == [(tp, 2)]
    assert sorted(observer.arrived) == [f"ORD-{o}" for o in range(6)]
    assert observer.gaps == 1
