"""CI smoke run of the webhook relay benchmark: small, but every phase and check end to end."""

from pathlib import Path

import pytest

from tests.bench.running import figure, run_benchmark


@pytest.mark.timeout(300)
def test_relay_benchmark_smoke(tmp_path: Path) -> None:
    """Exit 0, every check passed, and the figures the targets are held to were measured."""
    report = run_benchmark("relay", tmp_path)

    checks = report["checks"]
    assert "saturation: every event delivered" in checks
    assert "latency: every event delivered" in checks
    assert "signatures verify" in checks
    assert figure(report, "relay throughput at saturation") > 0
    assert figure(report, "baseline: HTTP client alone") > 0
    assert 0 < figure(report, "latency p99 (publish → delivery)") < 60_000
