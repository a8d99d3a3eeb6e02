"""CI smoke of the webhook relay benchmark (`make bench-relay ARGS=--smoke`): small, but every phase end to
end, held to its verdicts: every event delivered once, in sequence per order, with a valid signature. No
speed is asserted: the smoke size on a shared CI machine says nothing about one."""

import math
from pathlib import Path

import pytest

from tests.bench.running import assert_percentiles_consistent, assert_verdicts, figure, run_benchmark


@pytest.mark.timeout(300)
def test_relay_benchmark_smoke(tmp_path: Path) -> None:
    """Every phase delivered every event once and in order, signatures verify, the relay drained on SIGTERM,
    and the figures are consistent."""
    report = run_benchmark("relay", tmp_path)

    for phase in ("warm-up", "saturation", "latency"):
        assert_verdicts(
            report,
            f"{phase}: every event delivered",
            f"{phase}: none delivered twice",
            f"{phase}: in sequence per order",
        )
        assert report["checks"][f"{phase}: every event delivered"]["value"].startswith("0 of ")
    assert_verdicts(report, "signatures verify", "relay exited cleanly on SIGTERM")
    assert_percentiles_consistent(report, "latency {} (publish → delivery)")
    assert figure(report, "latency p99 (publish → delivery)") <= figure(report, "latency max")
    relay = figure(report, "relay throughput at saturation")
    baseline = figure(report, "baseline: HTTP client alone")
    assert relay > 0 and baseline > 0
    assert math.isclose(figure(report, "relay / baseline"), relay / baseline * 100)
    reference = figure(report, "reference: aiohttp alone")
    assert reference > 0 and math.isclose(figure(report, "relay / aiohttp alone"), relay / reference * 100)
    client = figure(report, "baseline CPU per 1,000 deliveries")
    assert client > 0 and figure(report, "aiohttp CPU per 1,000 deliveries") > 0
    assert figure(report, "redis CPU per 1,000 (saturation)") > 0  # the relay's queue is in Redis
    multiple = figure(report, "relay CPU per delivery / the baseline's")
    assert math.isclose(multiple, figure(report, "relay CPU per 1,000 deliveries") / client)
